"""The learning-rate schedule counts optimizer steps: on one process, with gradient accumulation, and under DDP.

accelerate's prepared scheduler steps ``num_processes`` times per optimizer step unless told otherwise; the loop
steps it itself once per optimizer step, so an N-process run follows the single-process schedule.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hf_fiqa.commands.train import main as train_main
from hf_fiqa.training.config import OptimConfig, TrainConfig

REPO = Path(__file__).resolve().parents[1]
TINY_IQA = REPO / "hub_configs" / "tiny-iqa-degradations.yaml"
LR = 1e-3  # the tiny config's


def _state(folder: Path) -> dict:
    return json.loads((folder / "trainer_state.json").read_text())


def _args(shared: Path, out: Path, *extra: str) -> list[str]:
    return ["--config", str(TINY_IQA), f"data.root={shared / 'data' / 'celeba-wild-ids'}", f"output_dir={out}",
            "data.limit=16", "batch_size=4", "max_steps=6", "log_every=1", "eval_every=6", "save_every=6", *extra]


def _cosine(step: int, total: int) -> float:
    return LR * 0.5 * (1 + math.cos(math.pi * step / total))


def _scheduler_steps(checkpoint: Path) -> int:
    return torch.load(checkpoint / "scheduler.bin", weights_only=False)["last_epoch"]


@pytest.fixture(scope="module")
def single_process_run(shared, tmp_path_factory):
    out = tmp_path_factory.mktemp("one") / "run"
    assert train_main(_args(shared, out)) == 0
    return out


def test_single_process_schedule_reaches_its_end(single_process_run):
    state = _state(single_process_run)
    lrs = [entry["lr"] for entry in state["train_log"]]
    assert [entry["step"] for entry in state["train_log"]] == list(range(1, 7))
    assert lrs == pytest.approx([_cosine(k, 6) for k in range(1, 7)], abs=1e-12)
    assert lrs[-1] == pytest.approx(0.0, abs=1e-12)
    assert state["scheduler_steps"] == state["global_step"] == 6
    assert _scheduler_steps(single_process_run / "checkpoints" / "step_6") == 6


def test_gradient_accumulation_steps_the_schedule_once_per_optimizer_step(shared, tmp_path):
    out = tmp_path / "accum"
    assert train_main(_args(shared, out, "gradient_accumulation_steps=2")) == 0
    state = _state(out)
    assert state["global_step"] == state["scheduler_steps"] == 6
    assert [entry["lr"] for entry in state["train_log"]] == pytest.approx([_cosine(k, 6) for k in range(1, 7)],
                                                                          abs=1e-12)


@pytest.mark.slow
def test_two_process_run_follows_the_single_process_schedule(shared, tmp_path, single_process_run):
    """Two CPU processes over gloo (torchrun): the cosine schedule ends at 0 at the last step, not after 1/2 of
    the run, and the scheduler stepped once per optimizer step."""
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29541",
           str(REPO / "train.py"), *_args(shared, out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = _state(out)
    assert state["num_processes"] == 2
    assert state["global_step"] == state["scheduler_steps"] == 6
    assert _scheduler_steps(out / "checkpoints" / "step_6") == 6
    lrs = [entry["lr"] for entry in state["train_log"]]
    assert lrs == [entry["lr"] for entry in _state(single_process_run)["train_log"]]
    assert lrs[-1] == pytest.approx(0.0, abs=1e-12)


def test_warmup_then_cosine_is_the_recipes_schedule():
    """optim.warmup_steps: linear warmup, then cosine down to 0 at T_max, where it stays (the quality-net recipe's
    schedule, which its main job was tuned with)."""
    from hf_fiqa.training.loop import _scheduler

    total, warmup = 40, 2
    config = TrainConfig(optim=OptimConfig(optimizer="adamw", lr=1e-3, scheduler="cosine", warmup_steps=warmup))
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    scheduler = _scheduler(config, optimizer, total)
    got = []
    for _ in range(total + 3):
        got.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    expected = [1e-3 * min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / total)))
                for s in range(total + 3)]
    assert got == expected  # the same expression: bit for bit
    assert got[0] == 0.5e-3 and got[1] == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi / total)))
    assert got[total:] == [0.0, 0.0, 0.0]
