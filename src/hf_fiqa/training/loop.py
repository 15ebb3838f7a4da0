"""The training loop behind ``accelerate launch train.py``: same code on CPU, one GPU, many GPUs or nodes.

Checkpoints are accelerate states in ``OUTPUT/checkpoints/step_N``, built under a temporary name with their
``trainer_state.json`` and renamed into place, so a run killed mid-save resumes from the previous complete
checkpoint (a damaged newest one is skipped with a warning). ``--resume latest`` restores model, optimizer,
scheduler and RNG states and skips the batches already seen in the interrupted epoch; since each example's
augmentation is seeded by (seed, epoch, index) and the loaders own their generators, the resumed run reproduces
the uninterrupted one bit for bit on the same hardware. Settings that fix the data order cannot change on resume. The best
model by the task's validation metric is exported with ``save_pretrained`` to ``OUTPUT/model``.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ._fs import atomic_write_text, replace_dir
from .config import ConfigError, TrainConfig
from .tasks import RecognitionTask, make_task

logger = logging.getLogger(__name__)
STATE_FILE = "trainer_state.json"
CONFIG_FILE = "train_config.yaml"


# Settings a resumed run must share with the run it continues: they fix the model, the examples, their split and
# order and the step count per epoch. Others (eval_every, num_workers, output of embeddings...) may change.
_RESUME_TOP_KEYS = ("task", "seed", "batch_size", "gradient_accumulation_steps", "image_size")
_RESUME_FREE_KEYS = ("data.num_workers", "data.embeddings")


def _flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value and prefix + key in ("model", "data"):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def resume_settings(config_dict: dict) -> dict[str, Any]:
    """The flattened settings that must not change on resume (see ``_RESUME_TOP_KEYS``)."""
    flat = _flatten({k: config_dict.get(k) for k in (*_RESUME_TOP_KEYS, "model", "data")})
    return {k: v for k, v in flat.items() if k not in _RESUME_FREE_KEYS}


def resume_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``key: run has A, now B`` for each resume setting that differs (both flattened by resume_settings)."""
    return [f"{key} (the run used {old.get(key)!r}, now {new.get(key)!r})"
            for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]


def _refuse_changed_settings(where: str, old: dict[str, Any], config: TrainConfig) -> None:
    differs = resume_differences(old, resume_settings(config.to_dict()))
    if differs:
        raise ConfigError(f"cannot resume {where} with changed settings: {'; '.join(differs)}. These fix the model, "
                          "the examples and their order, so the resumed run would not continue the same training; "
                          "resume with the run's values or choose another output_dir")


def _check_output_dir(config: TrainConfig, out: Path) -> None:
    """Refuse to mix runs: an output dir holding another run needs --resume or overwrite_output_dir, and a resumed
    run must keep the settings that fix the model and the data order."""
    previous = out / CONFIG_FILE
    if not previous.is_file():
        return
    if config.overwrite_output_dir and config.resume is None:
        shutil.rmtree(out)
        return
    import yaml

    if config.resume is None:
        raise ConfigError(f"output_dir {out} already holds a run; pass --resume latest to continue it, "
                          "or overwrite_output_dir=true to start over")
    try:
        old = yaml.safe_load(previous.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{previous} (the config of the run to resume) is not valid YAML: {exc}") from None
    if not isinstance(old, dict):
        raise ConfigError(f"{previous} (the config of the run to resume) does not hold a mapping")
    _refuse_changed_settings(f"the run in {out}", resume_settings(old), config)


def _step_of(folder: Path) -> int | None:
    try:
        return int(folder.name.split("_", 1)[1])
    except (IndexError, ValueError):
        return None


def _checkpoint_folders(out: Path) -> list[Path]:
    """``step_N`` folders under ``out/checkpoints``, oldest first (in-progress ``.step_N.partial`` ones excluded)."""
    folders = [p for p in (out / "checkpoints").glob("step_*") if p.is_dir() and _step_of(p) is not None]
    return sorted(folders, key=_step_of)


def _safetensors_problem(path: Path) -> str | None:
    """Why a safetensors file is unreadable (cut short, bad header), or None."""
    size = path.stat().st_size
    if size < 8:
        return f"{path.name} is empty or truncated ({size} bytes)"
    with open(path, "rb") as handle:
        n = int.from_bytes(handle.read(8), "little")
        if n <= 0 or 8 + n > size:
            return f"{path.name} is truncated (header of {n} bytes, file of {size})"
        try:
            header = json.loads(handle.read(n))
        except ValueError:
            return f"{path.name} has a damaged header"
    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)
            and "data_offsets" in v]
    if ends and 8 + n + max(ends) > size:
        return f"{path.name} is truncated ({size} bytes, needs {8 + n + max(ends)})"
    return None


def checkpoint_problem(folder: Path) -> str | None:
    """What makes a checkpoint folder unusable (missing or damaged files), or None when it looks complete."""
    folder = Path(folder)
    state_file = folder / STATE_FILE
    if not state_file.is_file():
        return f"{STATE_FILE} is missing"
    try:
        state = json.loads(state_file.read_text())
    except (ValueError, UnicodeDecodeError):
        return f"{STATE_FILE} is empty or truncated"
    if not isinstance(state, dict) or not isinstance(state.get("global_step"), int):
        return f"{STATE_FILE} holds no global_step"
    models = sorted(folder.glob("model*.safetensors")) + sorted(folder.glob("pytorch_model*.bin"))
    if not models:
        return "the model file (model.safetensors) is missing"
    for model in models:
        problem = _safetensors_problem(model) if model.suffix == ".safetensors" else (
            f"{model.name} is empty" if model.stat().st_size == 0 else None)
        if problem:
            return problem
    for pattern, what in (("optimizer*.bin", "optimizer state"), ("scheduler*.bin", "scheduler state"),
                          ("random_states_*.pkl", "RNG states")):
        files = list(folder.glob(pattern))
        if not files:
            return f"the {what} ({pattern}) is missing"
        empty = [f.name for f in files if f.stat().st_size == 0]
        if empty:
            return f"{', '.join(empty)} is empty"
    return None


def _warn_skipped(folder: Path, problem: str) -> None:
    logger.warning("checkpoint %s is incomplete or damaged (%s); falling back to the previous checkpoint",
                   folder, problem)
    warnings.warn(f"checkpoint {folder} is incomplete or damaged ({problem}); falling back to the previous "
                  "checkpoint", RuntimeWarning, stacklevel=3)


def latest_checkpoint(out: Path) -> Path | None:
    """The newest complete checkpoint under ``out/checkpoints``; damaged newer ones are skipped with a warning."""
    for folder in reversed(_checkpoint_folders(Path(out))):
        problem = checkpoint_problem(folder)
        if problem is None:
            return folder
        _warn_skipped(folder, problem)
    return None


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
    """A loader whose order and augmentations depend only on (seed, epoch): what exact resuming relies on.

    The sampler draws from its own generator; the loader gets one too (a loader without one draws its workers'
    base seed from the global RNG each time it is iterated, which a resumed run does once more than the
    uninterrupted one); the dataset seeds each example's augmentation from (seed, epoch, index)."""
    generator = torch.Generator().manual_seed(config.seed * 1000 + epoch)
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(epoch)
    weights = task.sample_weights()
    if weights is not None:
        sampler = torch.utils.data.WeightedRandomSampler(torch.as_tensor(weights), len(dataset), generator=generator)
    else:
        sampler = torch.utils.data.RandomSampler(dataset, generator=generator)
    return torch.utils.data.DataLoader(dataset, batch_size=config.batch_size, sampler=sampler, drop_last=True,
                                       num_workers=config.data.num_workers,
                                       generator=torch.Generator().manual_seed(config.seed * 1000 + epoch + 1))


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
    # Its own generator: iterating a loader without one draws from the global RNG.
    val_loader = torch.utils.data.DataLoader(val_set, batch_size=config.eval_batch_size,
                                             num_workers=config.data.num_workers,
                                             generator=torch.Generator().manual_seed(config.seed))
    model, optimizer, scheduler, val_loader = accelerator.prepare(model, optimizer, scheduler, val_loader)

    state = {"global_step": 0, "epoch": 0, "batches_in_epoch": 0, "best_metric": None, "best_step": None,
             "metric": task.primary_metric, "total_steps": total_steps, "num_processes": accelerator.num_processes,
             "history": [], "train_log": [], "running_losses": []}
    state["settings"] = resume_settings(config.to_dict())
    if config.resume:
        state = _resume(accelerator, config, out, state)
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        config.save(out / CONFIG_FILE)  # atomic
        accelerator.init_trackers(config.name, config={k: str(v) for k, v in config.to_dict().items()})

    bar = tqdm(total=total_steps, initial=state["global_step"], disable=not accelerator.is_local_main_process,
               desc=f"train {config.task}", unit="step")
    model.train()
    started, running = time.time(), list(state.get("running_losses", []))
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
                state.setdefault("train_log", []).append({"step": step, "loss": logs["train/loss"], "lr": logs["train/lr"]})
                bar.set_postfix(loss=f"{logs['train/loss']:.4f}")
                running = []
            if step % config.eval_every == 0 or step == total_steps:
                _evaluate(task, model, val_loader, accelerator, state, out)
            if step % config.save_every == 0 or step == total_steps:
                state["running_losses"] = list(running)
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
        atomic_write_text(out / STATE_FILE, json.dumps(state, indent=1))
        if config.push_to_hub:
            _push(out / "model", config.hub_model_id)
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
        if accelerator.is_main_process:  # exported next to the old best, then swapped in by renames
            partial = out / ".model.partial"
            if partial.exists():
                shutil.rmtree(partial)
            task.export(accelerator.unwrap_model(model), partial)
            atomic_write_text(partial / "eval_results.json", json.dumps({"step": step, **metrics}, indent=1))
            _write_card(partial, task.config, {"step": step, **metrics})
            replace_dir(partial, out / "model")


def _save(accelerator, state: dict, out: Path, keep: int) -> None:
    """Checkpoint atomically: accelerate's ``save_state`` fills ``checkpoints/.step_N.partial``, then the
    trainer state is written into it and the folder is renamed to ``step_N``. A kill at any moment leaves either
    no ``step_N`` or a complete one; leftovers of a killed save are removed at the next save."""
    folder = out / "checkpoints" / f"step_{state['global_step']}"
    partial = folder.with_name(f".{folder.name}.partial")
    if accelerator.is_main_process:
        partial.parent.mkdir(parents=True, exist_ok=True)
        if partial.exists():
            shutil.rmtree(partial)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(partial))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        atomic_write_text(partial / STATE_FILE, json.dumps(state, indent=1))
        replace_dir(partial, folder)
        for stale in (out / "checkpoints").glob(".step_*"):  # parts of saves a kill interrupted
            shutil.rmtree(stale, ignore_errors=True)
        folders = _checkpoint_folders(out)
        complete = [p for p in folders if checkpoint_problem(p) is None]
        kept = complete[-keep:]
        oldest_kept = _step_of(kept[0]) if kept else None
        for old in folders:
            if old not in kept and oldest_kept is not None and _step_of(old) < oldest_kept:
                shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def _resume(accelerator, config: TrainConfig, out: Path, fresh: dict) -> dict:
    """Load the checkpoint to resume (``latest``: the newest complete one, falling back past damaged ones)."""
    if config.resume == "latest":
        candidates = list(reversed(_checkpoint_folders(out)))
        if not candidates:
            accelerator.print(f"no checkpoint in {out / 'checkpoints'}; starting from scratch")
            return fresh
    else:
        folder = Path(config.resume)
        problem = checkpoint_problem(folder)
        if problem:
            raise ConfigError(f"resume: checkpoint {folder} cannot be resumed: {problem}")
        candidates = [folder]
    for checkpoint in candidates:
        problem = checkpoint_problem(checkpoint)
        if problem is None:
            state = json.loads((checkpoint / STATE_FILE).read_text())
            if "settings" in state:  # checkpoints of older versions lack it; train_config.yaml was checked
                _refuse_changed_settings(f"checkpoint {checkpoint}", state["settings"], config)
            try:
                accelerator.load_state(str(checkpoint))
            except (OSError, RuntimeError, ValueError, KeyError, EOFError) as exc:
                if config.resume != "latest":
                    raise ConfigError(f"resume: checkpoint {checkpoint} cannot be loaded: {exc}") from None
                problem = f"loading failed: {type(exc).__name__}: {exc}"
        if problem is not None:
            _warn_skipped(checkpoint, problem)
            continue
        if state.get("num_processes") not in (None, accelerator.num_processes):
            logger.warning("checkpoint %s was written by %s process(es), resuming on %d: batches are sharded "
                           "differently, so the resumed run does not see exactly the uninterrupted run's data order",
                           checkpoint, state["num_processes"], accelerator.num_processes)
        state["num_processes"] = accelerator.num_processes
        state["settings"] = fresh["settings"]
        for key, value in fresh.items():
            state.setdefault(key, value)
        accelerator.print(f"resumed from {checkpoint} at step {state['global_step']}")
        return state
    raise ConfigError(f"resume latest: no checkpoint in {out / 'checkpoints'} is complete; remove the damaged "
                      "ones or start over with overwrite_output_dir=true")


def _push(folder: Path, repo_id: str) -> None:
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo_id, exist_ok=True)
    api.upload_folder(folder_path=str(folder), repo_id=repo_id, commit_message="hf-fiqa training run")
