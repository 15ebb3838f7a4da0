"""Training the SDD-FIQA quality network: distil the recognizer into MANIQA, then fit pseudo-labels.

SDD-FIQA starts its quality regressor from the recognition network, so the regressor already "sees"
what identity features survive in a face. With no foreign weights available, MANIQA's ViT can get
the same start another way: it first learns to reproduce the recognizer's embedding of the same
crop (cosine loss on the mean of MANIQA's last-stage tokens through a linear probe, with those
tokens kept near unit scale), then the whole network regresses the pseudo-labels (SmoothL1 on
labels scaled to [0, 1]). With 0 distillation epochs the fit starts from random weights, which is
what the main job does: on its dev set the distilled start did worse (the README's ablation).

Both phases use the crops in memory (uint8), horizontal flips, AdamW with a cosine schedule, and
save after every epoch, so an interrupted run continues at the next epoch. On a CPU with native
bfloat16 (AVX512-BF16, AMX) the forward and backward passes run under bfloat16 autocast with float32
weights: about 1.5x the samples per second of float32 on two cores, which the main job spends on
more epochs.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

from ..models.maniqa import MANIQAConfig, MANIQAForImageQualityAssessment


@dataclass
class PhaseConfig:
    epochs: int
    lr: float
    batch_size: int = 64
    weight_decay: float = 0.05


def small_maniqa_config(image_size: int, **overrides) -> MANIQAConfig:
    """MANIQA sized for a 2-core CPU: a 4-block ViT on 8-pixel patches, TAB + Swin stages, patch-weighted head.

    No dropout or drop-path: within the main job's budget the network underfits (after 8 float32 epochs
    its rank correlation with the labels was 0.57 on training faces and 0.46 on held-out identities).
    """
    grid = image_size // 8
    values = dict(backbone="vit_tiny_patch16_224", image_size=image_size, patch_size=8, backbone_embed_dim=128,
                  backbone_depth=4, backbone_num_heads=4, feature_layers=[1, 2, 3], embed_dim=128, num_tab=1,
                  swin_depths=[2], swin_num_heads=[4], window_size=4 if grid % 4 == 0 else grid, mlp_dim=256,
                  dropout=0.0, drop_path=0.0, loss_type="smooth_l1", label_range=[0.0, 100.0])
    values.update(overrides)
    return MANIQAConfig(**values)


def _pixels(batch: np.ndarray, flip: np.ndarray | None) -> torch.Tensor:
    """uint8 (B, S, S, 3) -> MANIQA's input: [0, 1] then (x - 0.5) / 0.5, channels first."""
    x = torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
    if flip is not None and flip.any():
        x[torch.from_numpy(flip)] = x[torch.from_numpy(flip)].flip(-1)
    return x


def cpu_bf16_available() -> bool:
    """Whether this CPU runs bfloat16 matrix products natively (else autocast would be slower, not faster)."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


# The cosine loss ignores the scale of the tokens, which then drifts (to RMS ~3,000 in one run); a fresh
# quality head on such features starts with scores far outside [0, 1] and can die behind its ReLU. A
# penalty on log(RMS) keeps the distilled tokens near unit scale.
SCALE_WEIGHT = 0.1


class _Probe(nn.Module):
    """Linear map from pooled last-stage tokens to the recognizer's embedding (distillation only)."""

    def __init__(self, width: int, out: int):
        super().__init__()
        self.fc = nn.Linear(width, out)

    def forward(self, model: MANIQAForImageQualityAssessment, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The predicted embedding and the root-mean-square of the last-stage tokens."""
        x = model.stage2(model.stage1(model.backbone_features(pixels)))
        return self.fc(x.flatten(2).mean(-1)), x.float().pow(2).mean().sqrt()


def _stage_width(model: MANIQAForImageQualityAssessment, image_size: int) -> int:
    with torch.no_grad():
        return model.stage2(model.stage1(model.backbone_features(torch.zeros(1, 3, image_size, image_size)))).shape[1]


def _run_phase(name: str, folder: Path, model: MANIQAForImageQualityAssessment, extra: nn.Module | None,
               loss_fn: Callable[[np.ndarray], torch.Tensor], n: int, phase: PhaseConfig,
               seed: int, progress: bool, bf16: bool) -> list[float]:
    """Epochs of ``loss_fn(batch row positions)`` with resume at epoch granularity; returns mean loss per epoch."""
    state_file, log_file = folder / f"{name}.safetensors", folder / f"{name}.json"
    log = json.loads(log_file.read_text()) if log_file.is_file() else {"epoch_losses": []}
    done = len(log["epoch_losses"])
    modules = nn.ModuleDict({"model": model, **({"extra": extra} if extra is not None else {})})
    if done:
        modules.load_state_dict(load_file(str(state_file)))
    if done >= phase.epochs:
        return log["epoch_losses"]
    params = [p for p in modules.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=phase.lr, weight_decay=phase.weight_decay)
    steps_per_epoch = max(1, n // phase.batch_size)
    total = steps_per_epoch * phase.epochs
    warmup = max(1, total // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / total))))
    for _ in range(done * steps_per_epoch):  # the schedule position of a resumed run
        schedule.step()
    model.train()
    for epoch in range(done, phase.epochs):
        rng = np.random.default_rng((seed, epoch))
        order = rng.permutation(n)[: steps_per_epoch * phase.batch_size].reshape(steps_per_epoch, phase.batch_size)
        torch.manual_seed(seed * 1000 + epoch)
        losses = []
        bar = tqdm(order, desc=f"{name} epoch {epoch + 1}/{phase.epochs}", unit="step", disable=not progress)
        for index in bar:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = loss_fn(np.sort(index)).float()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            schedule.step()
            losses.append(float(loss.detach()))
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
        log["epoch_losses"].append(float(np.mean(losses)))
        tmp = state_file.with_name(state_file.name + ".tmp")
        save_file({k: v.contiguous() for k, v in modules.state_dict().items()}, str(tmp))
        tmp.replace(state_file)
        log_file.write_text(json.dumps(log))
    model.eval()
    return log["epoch_losses"]


def train_quality_network(folder: str | Path, crops: np.ndarray, targets: np.ndarray, labels: np.ndarray,
                          train_index: np.ndarray, config: MANIQAConfig, distill: PhaseConfig, fit: PhaseConfig,
                          seed: int = 0, progress: bool = True,
                          bf16: bool | None = None) -> tuple[MANIQAForImageQualityAssessment, dict]:
    """Distil then fit; returns the trained model and the per-epoch losses of both phases.

    ``crops``: uint8 (N, S, S, 3) quality-network inputs; ``targets``: the recognizer's (N, D)
    embeddings of the same faces; ``labels``: pseudo-labels in [0, 100] (NaN rows are not fitted);
    ``train_index``: the rows to train on; ``bf16``: autocast (default: when the CPU has it natively).
    """
    bf16 = cpu_bf16_available() if bf16 is None else bf16
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = MANIQAForImageQualityAssessment(config)
    unit_targets = torch.from_numpy(targets / np.linalg.norm(targets, axis=1, keepdims=True)).float()
    probe = _Probe(_stage_width(model, config.image_size), targets.shape[1])

    distill_rows = np.asarray(train_index)

    def distill_loss(index: np.ndarray) -> torch.Tensor:
        rows = distill_rows[index]
        flip = np.random.default_rng(int(rows[0])).random(len(rows)) < 0.5
        pred, rms = probe(model, _pixels(crops[rows], flip))
        cosine = (1.0 - nn.functional.cosine_similarity(pred.float(), unit_targets[rows], dim=1)).mean()
        return cosine + SCALE_WEIGHT * torch.log(rms).pow(2)

    history = {"distill": _run_phase("distill", folder, model, probe, distill_loss, len(distill_rows), distill,
                                     seed, progress, bf16)}
    fit_rows = distill_rows[np.isfinite(labels[distill_rows])]
    low, high = config.label_range
    scaled = torch.from_numpy((labels - low) / (high - low)).float()

    def fit_loss(index: np.ndarray) -> torch.Tensor:
        rows = fit_rows[index]
        flip = np.random.default_rng(int(rows[-1])).random(len(rows)) < 0.5
        return model(pixel_values=_pixels(crops[rows], flip), labels=scaled[rows]).loss

    history["fit"] = _run_phase("fit", folder, model, None, fit_loss, len(fit_rows), fit, seed + 1, progress, bf16)
    check_not_constant(model, crops, fit_rows[:512], folder)
    return model.eval(), history


def check_not_constant(model: MANIQAForImageQualityAssessment, crops: np.ndarray, rows: np.ndarray,
                       folder: Path) -> None:
    """Refuse a network that gives every face the same score (a dead ReLU head) instead of calibrating it."""
    if len(rows) > 1 and float(np.std(predict(model, crops, rows))) < 1e-6:
        raise RuntimeError(f"the quality network in {folder} gives every training face the same score (its head "
                           "died during fitting); delete that folder and rerun, with a lower learning rate")


@torch.inference_mode()
def predict(model: MANIQAForImageQualityAssessment, crops: np.ndarray, rows: np.ndarray | None = None,
            batch_size: int = 256) -> np.ndarray:
    """The model's ``score`` (label units) for uint8 crops, in batches."""
    rows = np.arange(len(crops)) if rows is None else np.asarray(rows)
    out = np.empty(len(rows), dtype=np.float64)
    model.eval()
    for lo in range(0, len(rows), batch_size):
        index = rows[lo:lo + batch_size]
        out[lo:lo + len(index)] = model(pixel_values=_pixels(crops[np.sort(index)], None)).score.double().numpy()[
            np.argsort(np.argsort(index))]
    return out
