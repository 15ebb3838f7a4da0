"""Checkpoints of the training loop: folders, damage checks, atomic save, resume, and the settings lock.

A checkpoint is an accelerate state (``Accelerator.save_state``: model, optimizer, scheduler, RNG states) in
``OUTPUT/checkpoints/step_N`` plus the loop's ``trainer_state.json``. It is built under ``.step_N.partial`` and
renamed into place, so a run killed mid-save leaves either no ``step_N`` or a complete one; ``--resume latest``
loads the newest complete checkpoint (``Accelerator.load_state``), skipping damaged newer ones with a warning.

accelerate's own checkpoint naming (``ProjectConfiguration(automatic_checkpoint_naming=True, total_limit=K)``) is
not used: it writes ``checkpoint_<save count>`` in place (a kill mid-save leaves a folder that looks complete),
names folders by save count rather than step, and its ``total_limit`` counts damaged folders as kept ones, which
could delete the last good checkpoint. Here ``keep_checkpoints`` keeps the newest K *complete* ones instead.

Settings that fix the model, the examples and their order cannot change on resume: :func:`check_output_dir` and
:func:`resume` refuse a resumed run whose settings differ from those the run was started with.
"""

from __future__ import annotations

import json
import logging
import shutil
import warnings
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_text, replace_dir
from .config import ConfigError, TrainConfig

logger = logging.getLogger(__name__)
STATE_FILE = "trainer_state.json"
CONFIG_FILE = "train_config.yaml"

# Settings a resumed run must share with the run it continues: they fix the model, the examples, their split and
# order and the step count per epoch. Others (eval_every, num_workers, output of embeddings...) may change.
_RESUME_TOP_KEYS = ("task", "seed", "batch_size", "gradient_accumulation_steps", "image_size")
_RESUME_FREE_KEYS = ("data.num_workers", "data.embeddings")


# -- the settings lock ----------------------------------------------------------------------------------------------
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


def refuse_changed_settings(where: str, old: dict[str, Any], config: TrainConfig) -> None:
    differs = resume_differences(old, resume_settings(config.to_dict()))
    if differs:
        raise ConfigError(f"cannot resume {where} with changed settings: {'; '.join(differs)}. These fix the model, "
                          "the examples and their order, so the resumed run would not continue the same training; "
                          "resume with the run's values or choose another output_dir")


def check_output_dir(config: TrainConfig, out: Path) -> None:
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
    refuse_changed_settings(f"the run in {out}", resume_settings(old), config)


# -- folders and their damage -----------------------------------------------------------------------------------------
def _step_of(folder: Path) -> int | None:
    try:
        return int(folder.name.split("_", 1)[1])
    except (IndexError, ValueError):
        return None


def checkpoint_folders(out: Path) -> list[Path]:
    """``step_N`` folders under ``out/checkpoints``, oldest first (in-progress ``.step_N.partial`` ones excluded)."""
    folders = [p for p in (Path(out) / "checkpoints").glob("step_*") if p.is_dir() and _step_of(p) is not None]
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
    for folder in reversed(checkpoint_folders(Path(out))):
        problem = checkpoint_problem(folder)
        if problem is None:
            return folder
        _warn_skipped(folder, problem)
    return None


# -- save and resume --------------------------------------------------------------------------------------------------
def save(accelerator, state: dict, out: Path, keep: int) -> None:
    """Checkpoint atomically: accelerate's ``save_state`` fills ``checkpoints/.step_N.partial``, then the
    trainer state is written into it and the folder is renamed to ``step_N``. A kill at any moment leaves either
    no ``step_N`` or a complete one; leftovers of a killed save are removed at the next save. The newest ``keep``
    complete checkpoints are kept (damaged ones newer than the oldest kept one stay, for inspection)."""
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
        folders = checkpoint_folders(out)
        kept = [p for p in folders if checkpoint_problem(p) is None][-keep:]
        oldest_kept = _step_of(kept[0]) if kept else None
        for old in folders:
            if old not in kept and oldest_kept is not None and _step_of(old) < oldest_kept:
                shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def resume(accelerator, config: TrainConfig, out: Path, fresh: dict) -> dict:
    """Load the checkpoint to resume (``latest``: the newest complete one, falling back past damaged ones) into the
    prepared objects, and return its trainer state (``fresh`` when there is none yet)."""
    if config.resume == "latest":
        candidates = list(reversed(checkpoint_folders(out)))
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
            refuse_changed_settings(f"checkpoint {checkpoint}", state.get("settings", {}), config)
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
