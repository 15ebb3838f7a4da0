"""The training loop behind ``accelerate launch train.py``: same code on CPU, one GPU, many GPUs or nodes.

Checkpoints are accelerate states in ``OUTPUT/checkpoints/step_N`` with a ``trainer_state.json`` written last,
so a run killed mid-save resumes from the previous complete checkpoint. ``--resume latest`` restores model,
optimizer, scheduler and RNG states and skips the batches already seen in the interrupted epoch. The best
model by the task's validation metric is exported with ``save_pretrained`` to ``OUTPUT/model``.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .config import ConfigError, TrainConfig
from .tasks import RecognitionTask, make_task

logger = logging.getLogger(__name__)
STATE_FILE = "trainer_state.json"
CONFIG_FILE = "train_config.yaml"
_COMPARED_SECTIONS = ("task", "model", "data")


def _check_output_dir(config: TrainConfig, out: Path) -> None:
    """Refuse to mix runs: an output dir holding another run needs --resume or overwrite_output_dir."""
    previous = out / CONFIG_FILE
    if not previous.is_file():
        return
    if config.overwrite_output_dir and config.resume is None:
        shutil.rmtree(out)
        return
    import yaml

    old = yaml.safe_load(previous.read_text()) or {}
    new = config.to_dict()
    differs = [k for k in _COMPARED_SECTIONS if old.get(k) != new.get(k)]
    if config.resume is None:
        raise ConfigError(f"output_dir {out} already holds a run; pass --resume latest to continue it, "
                          "or overwrite_output_dir=true to start over")
    if differs:
        raise ConfigError(f"output_dir {out} holds a run with different {', '.join(differs)}; "
                          "resume it with the same config or choose another output_dir")


def latest_checkpoint(out: Path) -> Path | None:
    """The newest complete checkpoint (its trainer_state.json exists) under ``out/checkpoints``."""
    folders = [p for p in (out / "checkpoints").glob("step_*") if (p / STATE_FILE).is_file()]
    return max(folders, key=lambda p: int(p.name.split("_")[1]), default=None)


def _optimizer(config: TrainConfig, params) -> torch.optim.Optimizer:
    o = config.optim
    if o.optimizer == "sgd":
        return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
    cls = torch.optim.AdamW if o.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=o.lr, weight_decay=o.weight_decay)


def _scheduler(config: TrainConfig, optimizer, total_steps: int):
    o = config.optim
    if o.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=o.t_max or total_steps)
    if o.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=o.step_size, gamma=o.gamma)
    return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)


def _train_loader(task, dataset, config: TrainConfig, epoch: int) -> torch.utils.data.DataLoader:
    """A loader whose order depends only on (seed, epoch): what resuming relies on."""
    generator = torch.Generator().manual_seed(config.seed * 1000 + epoch)
    weights = task.sample_weights()
    if weights is not None:
        sampler = torch.utils.data.WeightedRandomSampler(torch.as_tensor(weights), len(dataset), generator=generator)
    else:
        sampler = torch.utils.data.RandomSampler(dataset, generator=generator)
    return torch.utils.data.DataLoader(dataset, batch_size=config.batch_size, sampler=sampler, drop_last=True,
                                       num_workers=config.data.num_workers)


def train(config: TrainConfig) -> dict:
    """Run (or resume) training as configured; returns the final trainer state."""
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration, set_seed

    out = Path(config.output_dir)
    _check_output_dir(config, out)
    accelerator = Accelerator(
        # Without a GPU, cpu=True makes accelerate join a torchrun/MPI process group over gloo (multi-CPU DDP).
        cpu=not torch.cuda.is_available(),
        mixed_precision=config.mixed_precision,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        log_with=config.trackers or None,
        project_config=ProjectConfiguration(project_dir=str(out), logging_dir=str(out / "logs")),
    )
    set_seed(config.seed)
    task = make_task(config)
    model = task.build_model()
    data, train_set, val_set = task.build_data()
    if isinstance(task, RecognitionTask):
        model = task.wrap(model)

    per_epoch = len(train_set) // (config.batch_size * accelerator.num_processes)
    if per_epoch == 0:
        raise ConfigError(f"{len(train_set)} training examples do not fill one batch of {config.batch_size} "
                          f"on {accelerator.num_processes} process(es)")
    optimizer_steps_per_epoch = math.ceil(per_epoch / config.gradient_accumulation_steps)
    total_steps = config.max_steps or config.epochs * optimizer_steps_per_epoch
    optimizer = _optimizer(config, [p for p in model.parameters() if p.requires_grad])
    scheduler = _scheduler(config, optimizer, total_steps)
    val_loader = torch.utils.data.DataLoader(val_set, batch_size=config.eval_batch_size,
                                             num_workers=config.data.num_workers)
    model, optimizer, scheduler, val_loader = accelerator.prepare(model, optimizer, scheduler, val_loader)

    state = {"global_step": 0, "epoch": 0, "batches_in_epoch": 0, "best_metric": None, "best_step": None,
             "metric": task.primary_metric, "total_steps": total_steps, "num_processes": accelerator.num_processes,
             "history": []}
    if config.resume:
        checkpoint = latest_checkpoint(out) if config.resume == "latest" else Path(config.resume)
        if checkpoint is None:
            accelerator.print(f"no checkpoint in {out / 'checkpoints'}; starting from scratch")
        else:
            accelerator.load_state(str(checkpoint))
            state = json.loads((checkpoint / STATE_FILE).read_text())
            state["num_processes"] = accelerator.num_processes
            accelerator.print(f"resumed from {checkpoint} at step {state['global_step']}")
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        config.save(out / CONFIG_FILE)
        accelerator.init_trackers(config.name, config={k: str(v) for k, v in config.to_dict().items()})

    bar = tqdm(total=total_steps, initial=state["global_step"], disable=not accelerator.is_local_main_process,
               desc=f"train {config.task}", unit="step")
    model.train()
    started, running = time.time(), []
    while state["global_step"] < total_steps:
        loader = accelerator.prepare_data_loader(_train_loader(task, train_set, config, state["epoch"]))
        if state["batches_in_epoch"]:
            loader = accelerator.skip_first_batches(loader, state["batches_in_epoch"])
        for batch in loader:
            with accelerator.accumulate(model):
                loss = task.loss(model, batch)
                accelerator.backward(loss)
                if config.optim.grad_clip and accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            state["batches_in_epoch"] += 1
            running.append(loss.detach().float().item())
            if not accelerator.sync_gradients:
                continue
            state["global_step"] += 1
            step = state["global_step"]
            bar.update(1)
            if step % config.log_every == 0 or step == total_steps:
                logs = {"train/loss": float(np.mean(running)), "train/lr": scheduler.get_last_lr()[0]}
                accelerator.log(logs, step=step)
                bar.set_postfix(loss=f"{logs['train/loss']:.4f}")
                running = []
            if step % config.eval_every == 0 or step == total_steps:
                _evaluate(task, model, val_loader, accelerator, state, out)
            if step % config.save_every == 0 or step == total_steps:
                _save(accelerator, state, out, config.keep_checkpoints)
            if step >= total_steps:
                break
        else:  # the epoch ran out
            state["epoch"] += 1
            state["batches_in_epoch"] = 0
    bar.close()
    state["train_seconds_this_run"] = round(time.time() - started, 2)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (out / "trainer_state.json").write_text(json.dumps(state, indent=1))
        if config.push_to_hub:
            _push(out / "model", config.hub_model_id)
    accelerator.end_training()
    return state


def _evaluate(task, model, val_loader, accelerator, state: dict, out: Path) -> None:
    model.eval()
    metrics = task.evaluate(model, val_loader, accelerator)
    model.train()
    step = state["global_step"]
    accelerator.log({f"val/{k}": v for k, v in metrics.items()}, step=step)
    state["history"].append({"step": step, **metrics})
    value = metrics.get(task.primary_metric)
    best = state["best_metric"]
    improved = value is not None and np.isfinite(value) and (
        best is None or (value > best if task.higher_is_better else value < best))
    accelerator.print(f"step {step}: " + ", ".join(f"{k}={v:.4g}" for k, v in metrics.items())
                      + (" (best)" if improved else ""))
    if improved:
        state["best_metric"], state["best_step"] = float(value), step
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            task.export(accelerator.unwrap_model(model), out / "model")
            (out / "model" / "eval_results.json").write_text(json.dumps({"step": step, **metrics}, indent=1))


def _save(accelerator, state: dict, out: Path, keep: int) -> None:
    folder = out / "checkpoints" / f"step_{state['global_step']}"
    accelerator.save_state(str(folder))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (folder / STATE_FILE).write_text(json.dumps(state, indent=1))  # written last: marks the checkpoint complete
        complete = sorted((p for p in (out / "checkpoints").glob("step_*") if (p / STATE_FILE).is_file()),
                          key=lambda p: int(p.name.split("_")[1]))
        for old in complete[:-keep]:
            shutil.rmtree(old, ignore_errors=True)


def _push(folder: Path, repo_id: str) -> None:
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo_id, exist_ok=True)
    api.upload_folder(folder_path=str(folder), repo_id=repo_id, commit_message="hf-fiqa training run")
