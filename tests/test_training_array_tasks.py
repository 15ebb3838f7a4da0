"""The quality-net recipe's phases as tasks of the one loop: distillation and pseudo-label fit on arrays in memory."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch


def test_epoch_order_is_a_seeded_permutation_in_sorted_full_batches():
    from hf_fiqa.training.array_tasks import SortedBatchPermutation

    order = list(SortedBatchPermutation(23, 5, seed=1, epoch=0))
    assert len(order) == 20 and len(set(order)) == 20 and set(order) <= set(range(23))
    batches = np.asarray(order).reshape(4, 5)
    assert (np.diff(batches, axis=1) > 0).all()
    expected = np.sort(np.random.default_rng((1, 0)).permutation(23)[:20].reshape(4, 5), axis=1)
    assert np.array_equal(batches, expected)
    assert order == list(SortedBatchPermutation(23, 5, seed=1, epoch=0))
    assert order != list(SortedBatchPermutation(23, 5, seed=1, epoch=1))


def _arrays(n: int = 40, size: int = 32):
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    targets = rng.normal(size=(n, 16)).astype(np.float32)
    labels = rng.uniform(0, 100, n)
    labels[2] = np.nan  # not fitted
    return crops, targets, labels


@pytest.fixture(scope="module")
def quality_net(tmp_path_factory):
    from hf_fiqa.recipes.quality_net import PhaseConfig, small_maniqa_config, train_quality_network

    folder = tmp_path_factory.mktemp("qnet") / "network"
    crops, targets, labels = _arrays()
    args = (folder, crops, targets, labels, np.arange(36), small_maniqa_config(32), PhaseConfig(1, 2e-3, 8),
            PhaseConfig(2, 1e-3, 8))
    model, history = train_quality_network(*args, seed=0, progress=False, bf16=True)
    return folder, args, model, history


def test_both_phases_run_through_the_loop(quality_net):
    folder, _, model, history = quality_net
    assert len(history["distill"]) == 1 and len(history["fit"]) == 2 and np.isfinite(history["fit"]).all()
    for phase, steps in (("distill", 36 // 8), ("fit", 2 * (35 // 8))):
        state = json.loads((folder / phase / "trainer_state.json").read_text())
        assert state["global_step"] == state["scheduler_steps"] == steps
        assert state["train_log"][-1]["lr"] == 0.0  # warmup then cosine, down to its end
        assert [p.name for p in (folder / phase / "checkpoints").iterdir()] == [f"step_{steps}"]  # one kept
    assert (folder / "fit.safetensors").is_file()
    # bf16 training leaves no autocast forward behind: the returned model predicts in float32.
    assert "forward" not in vars(model) and "_original_forward" not in vars(model)
    size = model.config.image_size
    assert model(pixel_values=torch.zeros(1, 3, size, size)).score.dtype == torch.float32


def test_finished_network_is_loaded_not_retrained(quality_net):
    from hf_fiqa.recipes.quality_net import train_quality_network

    folder, args, model, history = quality_net
    stamp = (folder / "fit.safetensors").stat().st_mtime_ns
    again, history_again = train_quality_network(*args, seed=0, progress=False, bf16=True)
    assert (folder / "fit.safetensors").stat().st_mtime_ns == stamp and history_again == history
    a, b = model.state_dict(), again.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_distillation_loss_is_cosine_plus_token_scale():
    from hf_fiqa.recipes.quality_net import small_maniqa_config
    from hf_fiqa.training.array_tasks import SCALE_WEIGHT, EmbeddingDistillationTask, uint8_pixels
    from hf_fiqa.training.config import TrainConfig

    crops, targets, _ = _arrays()
    task = EmbeddingDistillationTask(TrainConfig(batch_size=4), crops, targets, np.arange(10, 30),
                                     small_maniqa_config(32), init_seed=0)
    probe = task.build_model()
    batch = torch.tensor([0, 3, 4, 9])
    rows = np.arange(10, 30)[batch.numpy()]
    flip = np.random.default_rng(int(rows[0])).random(4) < 0.5
    with torch.no_grad():
        loss = task.loss(probe, batch)
        tokens = probe.model.forward_features(uint8_pixels(crops[rows], flip))
        pred = probe.fc(tokens.mean(1))
        unit = torch.from_numpy(targets[rows] / np.linalg.norm(targets[rows], axis=1, keepdims=True))
        expected = (1 - torch.nn.functional.cosine_similarity(pred, unit, dim=1)).mean() \
            + SCALE_WEIGHT * torch.log(tokens.pow(2).mean().sqrt()) ** 2
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_training_imports_no_recipe_pipeline_or_cli_code():
    import re
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "src" / "hf_fiqa" / "training"
    bad = re.compile(r"^\s*(from|import)\s+(\.\.(recipes|pipelines|cli|commands)\b|hf_fiqa\.(recipes|pipelines|cli|"
                     r"commands)\b|\.\.\s+import|hf_fiqa\s+import)")
    offenders = [f"{p.name}:{n}" for p in folder.glob("*.py") for n, line in enumerate(p.read_text().splitlines(), 1)
                 if bad.search(line)]
    assert not offenders, offenders


def test_runs_with_another_precision_follow_in_the_same_process(quality_net, tmp_path):
    """accelerate keeps one process-wide state; each run of the loop starts its own (bf16 above, float32 here)."""
    from hf_fiqa.recipes.quality_net import PhaseConfig, train_quality_network

    _, args, _, _ = quality_net
    model, history = train_quality_network(tmp_path / "fp32", *args[1:6], PhaseConfig(0, 2e-3, 8),
                                           PhaseConfig(1, 1e-3, 8), seed=0, progress=False, bf16=False)
    assert history["distill"] == [] and len(history["fit"]) == 1
