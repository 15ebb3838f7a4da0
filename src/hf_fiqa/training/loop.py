"""The one training loop of hf-fiqa: ``accelerate launch train.py`` / ``hf-fiqa train`` and the recipes' stages.

The same code runs on a CPU, one GPU, many GPUs or nodes. A task (:mod:`.tasks`, :mod:`.array_tasks`) says what
model, data, loss and evaluation; :func:`train` does the rest. Checkpoints (atomic, resumable bit for bit,
damaged ones skipped) live in :mod:`.checkpoints`. Since each example's augmentation is seeded by
(seed, epoch, index) and the loaders own their generators, a resumed run reproduces the uninterrupted one bit for
bit on the same hardware. The best model by the task's validation metric is exported with ``save_pretrained`` to
``OUTPUT/model``.

The learning-rate schedule counts optimizer steps. accelerate's prepared scheduler, by default, steps
``num_processes`` times per optimizer step (it assumes the schedule was sized for the single-process length of the
loader, as in ``split_batches=False`` examples); here ``total_steps`` already is the per-process count of optimizer
steps, so that would finish a cosine schedule after 1/N of an N-process run. The accelerator is therefore made with
``step_scheduler_with_optimizer=False`` and the loop steps the (still prepared, so checkpointed) scheduler itself,
once per optimizer step that really happened (not on accumulation micro-batches, not after an fp16 overflow).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..atomic import atomic_write_text, replace_dir
from .checkpoints import CONFIG_FILE, STATE_FILE, check_output_dir, resume, resume_settings, save
from .config import ConfigError, TrainConfig
from .tasks import Task, make_task


def _optimizer(config: TrainConfig, params) -> torch.optim.Optimizer:
    o = config.optim
    if o.optimizer == "sgd":
        return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
    cls = torch.optim.AdamW if o.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=o.lr, weight_decay=o.weight_decay)


def _scheduler(config: TrainConfig, optimizer, total_steps: int):
    """Per optimizer step. With ``optim.warmup_steps``, a linear warmup multiplies the schedule (cosine then reaches
    0 at T_max and stays there)."""
    o = config.optim
    t_max = o.t_max or total_steps
    if o.warmup_steps:
        warmup = o.warmup_steps
        if o.scheduler == "cosine":
            decay = lambda s: 0.5 * (1 + math.cos(math.pi * min(1.0, s / t_max)))  # noqa: E731
        elif o.scheduler == "step":
            decay = lambda s: o.gamma ** (s // o.step_size)  # noqa: E731
        else:
            decay = lambda s: 1.0  # noqa: E731
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup) * decay(s))
    if o.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=t_max)
    if o.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=o.step_size, gamma=o.gamma)
    return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)


def _train_loader(task: Task, dataset, config: TrainConfig, epoch: int) -> torch.utils.data.DataLoader:
    """A loader whose order and augmentations depend only on (seed, epoch): what exact resuming relies on.

    The sampler draws from its own generator; the loader gets one too (a loader without one draws its workers'
    base seed from the global RNG each time it is iterated, which a resumed run does once more than the
    uninterrupted one); the dataset seeds each example's augmentation from (seed, epoch, index)."""
    generator = torch.Generator().manual_seed(config.seed * 1000 + epoch)
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(epoch)
    return torch.utils.data.DataLoader(dataset, batch_size=config.batch_size,
                                       sampler=task.train_sampler(dataset, epoch, generator), drop_last=True,
                                       num_workers=config.data.num_workers,
                                       generator=torch.Generator().manual_seed(config.seed * 1000 + epoch + 1))


def _fresh_accelerator_state() -> None:
    """accelerate keeps one process-wide state and refuses a second Accelerator with another precision; runs in one
    process (a recipe's stages) each get their own. The process group (PartialState) is kept."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()


def _unwrapped(accelerator, model: torch.nn.Module) -> torch.nn.Module:
    """The trained module without DDP and without the autocast forward accelerate installed for mixed precision."""
    module = accelerator.unwrap_model(model, keep_fp32_wrapper=False)
    bound = vars(module).get("forward")
    if bound is not None and getattr(bound, "__func__", None) is type(module).forward:
        del module.forward  # the class's own forward again, not an instance attribute
    return module


def train(config: TrainConfig, task: Task | None = None) -> dict:
    """Run (or resume) training as configured; returns the final trainer state. ``task``: a task object (e.g. one
    over arrays in memory, :mod:`.array_tasks`); default: the one ``config.task`` names. Afterwards
    ``task.trained_model`` is the trained module."""
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration, set_seed

    out = Path(config.output_dir)
    check_output_dir(config, out)
    _fresh_accelerator_state()
    accelerator = Accelerator(
        # Without a GPU, cpu=True makes accelerate join a torchrun/MPI process group over gloo (multi-CPU DDP).
        cpu=not torch.cuda.is_available(),
        mixed_precision=config.mixed_precision,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        log_with=config.trackers or None,
        project_config=ProjectConfiguration(project_dir=str(out), logging_dir=str(out / "logs")),
        step_scheduler_with_optimizer=False,  # stepped below, once per optimizer step: see the module docstring
    )
    set_seed(config.seed)
    task = task if task is not None else make_task(config)
    model = task.build_model()
    _, train_set, val_set = task.build_data()
    model = task.wrap(model)

    per_epoch = len(train_set) // (config.batch_size * accelerator.num_processes)
    if per_epoch == 0:
        raise ConfigError(f"{len(train_set)} training examples do not fill one batch of {config.batch_size} "
                          f"on {accelerator.num_processes} process(es)")
    total_steps = config.max_steps or config.epochs * math.ceil(per_epoch / config.gradient_accumulation_steps)
    optimizer = _optimizer(config, [p for p in model.parameters() if p.requires_grad])
    scheduler = _scheduler(config, optimizer, total_steps)
    val_loader = None
    if val_set is not None:  # its own generator: iterating a loader without one draws from the global RNG
        val_loader = torch.utils.data.DataLoader(val_set, batch_size=config.eval_batch_size,
                                                 num_workers=config.data.num_workers,
                                                 generator=torch.Generator().manual_seed(config.seed))
    model, optimizer, scheduler, *rest = accelerator.prepare(model, optimizer, scheduler,
                                                             *([val_loader] if val_loader is not None else []))
    val_loader = rest[0] if rest else None

    state = {"global_step": 0, "epoch": 0, "batches_in_epoch": 0, "best_metric": None, "best_step": None,
             "metric": task.primary_metric, "total_steps": total_steps, "num_processes": accelerator.num_processes,
             "history": [], "train_log": [], "running_losses": [], "settings": resume_settings(config.to_dict())}
    if config.resume:
        state = resume(accelerator, config, out, state)
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        config.save(out / CONFIG_FILE)  # atomic
        accelerator.init_trackers(config.name, config={k: str(v) for k, v in config.to_dict().items()})

    bar = tqdm(total=total_steps, initial=state["global_step"], desc=f"train {config.task}", unit="step",
               disable=not (accelerator.is_local_main_process and config.progress))
    model.train()
    started, running = time.time(), list(state.get("running_losses", []))
    while state["global_step"] < total_steps:
        loader = accelerator.prepare_data_loader(_train_loader(task, train_set, config, state["epoch"]))
        if state["batches_in_epoch"]:
            loader = accelerator.skip_first_batches(loader, state["batches_in_epoch"])
        for batch in loader:
            with accelerator.accumulate(model):
                with accelerator.autocast():  # losses computed outside the model's forward get it too
                    loss = task.loss(model, batch)
                accelerator.backward(loss)
                if config.optim.grad_clip and accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
                optimizer.step()
                if accelerator.sync_gradients and not optimizer.step_was_skipped:
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
                state["train_log"].append({"step": step, "loss": logs["train/loss"], "lr": logs["train/lr"]})
                bar.set_postfix(loss=f"{logs['train/loss']:.4f}")
                running = []
            if val_loader is not None and (step % config.eval_every == 0 or step == total_steps):
                _evaluate(task, model, val_loader, accelerator, state, out)
            if step % config.save_every == 0 or step == total_steps:
                state["running_losses"] = list(running)
                save(accelerator, state, out, config.keep_checkpoints)
            if step >= total_steps:
                break
        else:  # the epoch ran out
            state["epoch"] += 1
            state["batches_in_epoch"] = 0
    bar.close()
    state["train_seconds_this_run"] = round(time.time() - started, 2)
    state["scheduler_steps"] = int(scheduler.scheduler.last_epoch)  # == global_step: one per optimizer step
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        atomic_write_text(out / STATE_FILE, json.dumps(state, indent=1))
        if config.push_to_hub:
            _push(out / "model", config.hub_model_id)
    task.trained_model = _unwrapped(accelerator, model)
    accelerator.end_training()
    return state


def _write_card(folder: Path, config: TrainConfig, results: dict) -> None:
    """The exported model's README.md: metadata, the run's own evaluation, the command that made it."""
    import shlex
    import sys

    from ..hub import write_model_card

    source = config.data.source or "training data"
    write_model_card(folder, task=config.task, results=results, datasets=[config.data.source] if config.data.source else [],
                     command=shlex.join(["accelerate", "launch", *sys.argv]), base_model=config.model.init_from,
                     model_name=config.hub_model_id or config.name,
                     eval_dataset={"name": f"{source} validation split", "type": config.data.source or "custom",
                                   "split": "validation"})


def _evaluate(task: Task, model, val_loader, accelerator, state: dict, out: Path) -> None:
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
        if accelerator.is_main_process:  # exported next to the old best, then swapped in by renames
            partial = out / ".model.partial"
            if partial.exists():
                shutil.rmtree(partial)
            task.export(accelerator.unwrap_model(model), partial)
            atomic_write_text(partial / "eval_results.json", json.dumps({"step": step, **metrics}, indent=1))
            _write_card(partial, task.config, {"step": step, **metrics})
            replace_dir(partial, out / "model")


def _push(folder: Path, repo_id: str) -> None:
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo_id, exist_ok=True)
    api.upload_folder(folder_path=str(folder), repo_id=repo_id, commit_message="hf-fiqa training run")
