"""Training the SDD-FIQA quality network: distil the recognizer into MANIQA, then fit pseudo-labels.

SDD-FIQA starts its quality regressor from the recognition network, so the regressor already "sees"
what identity features survive in a face. With no foreign weights available, MANIQA's ViT can get
the same start another way: it first learns to reproduce the recognizer's embedding of the same
crop (cosine loss on the mean of MANIQA's last-stage tokens through a linear probe, with those
tokens kept near unit scale), then the whole network regresses the pseudo-labels (SmoothL1 on
labels scaled to [0, 1]). With 0 distillation epochs the fit starts from random weights, which is
what the main job does: on its dev set the distilled start did worse (the README's ablation).

Both phases are runs of the one training loop (:func:`hf_fiqa.training.train`) with the array tasks of
:mod:`hf_fiqa.training.array_tasks`: crops in memory (uint8), horizontal flips, AdamW with a warmed-up
cosine schedule, gradients clipped at 1, a checkpoint after every epoch (an interrupted run resumes at the
last finished epoch, exactly). On a CPU with native bfloat16 (AVX512-BF16, AMX) the forward and backward
passes run under bfloat16 autocast with float32 weights: about 1.5x the samples per second of float32
on two cores, which the main job spends on more epochs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..atomic import atomic_write
from ..models.maniqa import MANIQAConfig, MANIQAForImageQualityAssessment
from ..training import train
from ..labels.pair_failures import GenuinePairs
from ..training.array_tasks import (  # noqa: F401  (predict, cpu_bf16_available: used by the recipe)
    EmbeddingDistillationTask, PairFailureTask, PseudoLabelTask, TunedLastStage, bf16_available, check_not_constant,
    cpu_bf16_available, predict)
from ..training.config import ModelConfig, OptimConfig, TrainConfig

FINAL = "fit.safetensors"  # the fitted network's weights: its presence marks the stage as done


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


def phase_train_config(task: str, folder: Path, phase: PhaseConfig, n: int, seed: int, model_config: MANIQAConfig,
                       bf16: bool, progress: bool) -> TrainConfig:
    """One phase as a loop config: AdamW, linear warmup over 5% of the steps then cosine to 0, clip at 1, a log
    entry (the epoch's mean loss) and a checkpoint after every epoch, resumed when the folder holds one."""
    steps = n // phase.batch_size
    if steps == 0:
        raise ValueError(f"{task}: {n} training faces do not fill one batch of {phase.batch_size}")
    total = steps * phase.epochs
    network = {k: v for k, v in json.loads(model_config.to_json_string(use_diff=True)).items()
               if k != "transformers_version"}
    return TrainConfig(
        task=task, name=f"quality-net-{task}", output_dir=str(folder), seed=seed, batch_size=phase.batch_size,
        epochs=phase.epochs, mixed_precision="bf16" if bf16 else "no", save_every=steps, eval_every=total,
        log_every=steps, keep_checkpoints=1, resume="latest", trackers=[], progress=progress,
        model=ModelConfig(arch="maniqa", kwargs=network),
        optim=OptimConfig(optimizer="adamw", lr=phase.lr, weight_decay=phase.weight_decay, scheduler="cosine",
                          warmup_steps=max(1, total // 20), grad_clip=1.0))


def _fit_layout(folder: str | Path, labels: np.ndarray, train_index: np.ndarray):
    """The fit's folder (created), its rows, the rows with a finite label, and the final weights' path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = np.asarray(train_index)
    return folder, rows, rows[np.isfinite(labels[rows])], folder / FINAL


def _save_final(model, final: Path) -> None:
    """The fitted weights, written atomically (their presence marks the stage done)."""
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    atomic_write(final, lambda tmp: save_file(state, str(tmp)))


def _epoch_losses(folder: Path) -> list[float]:
    state = folder / "trainer_state.json"
    return [entry["loss"] for entry in json.loads(state.read_text())["train_log"]] if state.is_file() else []


def train_quality_network(folder: str | Path, crops: np.ndarray, targets: np.ndarray, labels: np.ndarray,
                          train_index: np.ndarray, config: MANIQAConfig, distill: PhaseConfig, fit: PhaseConfig,
                          seed: int = 0, progress: bool = True,
                          bf16: bool | None = None) -> tuple[MANIQAForImageQualityAssessment, dict]:
    """Distil then fit; returns the trained model and the per-epoch mean losses of both phases.

    ``crops``: uint8 (N, S, S, 3) quality-network inputs; ``targets``: the recognizer's (N, D)
    embeddings of the same faces; ``labels``: pseudo-labels in [0, 100] (NaN rows are not fitted);
    ``train_index``: the rows to train on; ``bf16``: autocast (default: when the CPU has it natively).
    The phases run in ``folder/distill`` and ``folder/fit``; the result is ``folder/fit.safetensors``.
    """
    bf16 = bf16_available() if bf16 is None else bf16
    folder, rows, fit_rows, final = _fit_layout(folder, labels, train_index)
    if final.is_file():
        weights = load_file(str(final))
        if all(k.startswith("model.") for k in weights):  # written by versions that also saved the probe
            weights = {k[len("model."):]: v for k, v in weights.items()}
        model = MANIQAForImageQualityAssessment(config)
        model.load_state_dict(weights)
    else:
        model = None
        if distill.epochs:
            run = phase_train_config("distill", folder / "distill", distill, len(rows), seed, config, bf16, progress)
            task = EmbeddingDistillationTask(run, crops, targets, rows, config, init_seed=seed)
            train(run, task)
            model = task.trained_model.model
        # seed + 1: the fit draws other epoch orders than the distillation; fresh weights start from `seed`.
        run = phase_train_config("fiqa", folder / "fit", fit, len(fit_rows), seed + 1, config, bf16, progress) \
            if fit.epochs else None
        task = PseudoLabelTask(run, crops, labels, fit_rows, config, init_seed=seed, init_model=model)
        if run is not None:
            train(run, task)
            model = task.trained_model
        elif model is None:
            model = task.build_model()
        _save_final(model, final)
    history = {"distill": _epoch_losses(folder / "distill"), "fit": _epoch_losses(folder / "fit")}
    check_not_constant(model, crops, fit_rows[:512], folder)
    return model.eval(), history


# -- MANIQA on a frozen recognizer trunk -----------------------------------------------------------------------------
def trunk_processor(recognizer: str | Path, crop_size: int):
    """MANIQA's image processor normalising pixels exactly as the recognizer's own processor does: ImageNet-style
    ``image_mean``/``image_std`` as they are, dlib's ``(x - mean) / 256`` on 0-255 levels as mean/255 and 256/255."""
    from ..models.maniqa import MANIQAImageProcessor

    saved = json.loads((Path(recognizer) / "preprocessor_config.json").read_text())
    mean, std = saved["image_mean"], saved.get("image_std")
    if "pixel_divisor" in saved:  # dlib: levels, not [0, 1]
        mean, std = [m / 255.0 for m in mean], [saved["pixel_divisor"] / 255.0] * 3
    return MANIQAImageProcessor(crop_size=crop_size, policy="resize", image_mean=mean, image_std=std)


def trunk_maniqa(recognizer: str | Path, out_features: list[str], grid: int,
                 **overrides) -> MANIQAForImageQualityAssessment:
    """A MANIQA whose backbone is a recognizer's trunk (its released weights; ``AutoBackbone`` maps
    ``out_features`` pooled to ``grid`` x ``grid``) under a CPU-sized head: one TAB, a 1x1 projection and one Swin
    block per stage, 64 then 32 channels (0.13 M parameters on MobileFaceNet's stage2 + stage3: 0.17 s per
    training step of 64 on the 2-core CPU, against 1.1 s with MobileFaceNet's 512-channel ``sep`` map also in and
    two 128-wide Swin blocks).

    The recognizer's alignment template (if not ArcFace's) travels in ``config.alignment_template`` so scorers cut
    the crop the trunk was trained on."""
    from transformers import AutoBackbone, AutoConfig

    from ..models import register_models

    register_models()  # AutoConfig/AutoBackbone learn the recognizer families
    trunk_config = AutoConfig.from_pretrained(recognizer, out_features=list(out_features))
    values = dict(backbone_config=trunk_config, feature_grid=grid, image_size=trunk_config.image_size, embed_dim=64,
                  num_tab=1, swin_depths=[1], swin_num_heads=[2], window_size=grid, mlp_dim=128, dropout=0.0,
                  drop_path=0.0, loss_type="smooth_l1", label_range=[0.0, 100.0])
    template = getattr(trunk_config, "alignment_template", None)
    if template is not None:
        values["alignment_template"] = template
    values.update(overrides)
    model = MANIQAForImageQualityAssessment(MANIQAConfig(**values))
    trunk = AutoBackbone.from_config(trunk_config)
    trunk.load_state_dict(load_file(str(Path(recognizer) / "model.safetensors")), strict=False)
    model.backbone.load_state_dict(trunk.state_dict())
    return model.eval()


@torch.inference_mode()
def trunk_pass(model: MANIQAForImageQualityAssessment, processor, crops: np.ndarray, recognizer=None,
               batch_size: int = 32, progress: bool = True,
               desc: str = "trunk features") -> tuple[np.ndarray, np.ndarray | None]:
    """One pass of the frozen trunk over uint8 ``crops`` (through ``processor``, :func:`trunk_processor`): MANIQA's
    ``backbone_features`` as one float16 ``(N, C, g, g)`` array, computed once so the head can train for many
    epochs, and, given the ``recognizer`` the trunk belongs to, its float32 embeddings from the same pass (its
    ``embedding_from_trunk`` on the map named by its ``trunk_output``, which must then be the last of
    ``out_features``)."""
    from tqdm.auto import tqdm

    if recognizer is not None and model.backbone.out_features[-1] != recognizer.trunk_output:
        raise ValueError(f"embeddings need the trunk's {recognizer.trunk_output} map as the last of out_features, got "
                         f"{model.backbone.out_features}")
    model.eval()
    features = embeddings = None
    n = len(crops)
    for lo in tqdm(range(0, n, batch_size), desc=desc, unit="batch", disable=not progress):
        pixels = processor(list(np.asarray(crops[lo:lo + batch_size])), return_tensors="pt")["pixel_values"]
        maps = model.backbone(pixels).feature_maps
        pooled = model.pool_backbone_maps(maps).float().numpy()
        if features is None:
            features = np.empty((n, *pooled.shape[1:]), dtype=np.float16)
        features[lo:lo + len(pooled)] = pooled
        if recognizer is not None:
            emb = recognizer.embedding_from_trunk(maps[-1]).float().numpy()
            if embeddings is None:
                embeddings = np.empty((n, emb.shape[1]), dtype=np.float32)
            embeddings[lo:lo + len(emb)] = emb
    if features is None:
        raise ValueError("trunk_pass: no crops")
    return features, embeddings


def last_stage_inputs(model: MANIQAForImageQualityAssessment, processor, crops: np.ndarray, batch_size: int = 32,
                      progress: bool = True, desc: str = "last stage inputs") -> np.ndarray:
    """The full-size map entering the trunk's last stage (the last of ``out_features``) for uint8 ``crops``, float16:
    with :func:`trunk_pass`'s features, what :class:`TunedLastStage` trains on (MobileFaceNet: ``stage2``'s
    128 x 14 x 14)."""
    from tqdm.auto import tqdm

    index = TunedLastStage(model).input_map
    model.eval()
    out = None
    with torch.inference_mode():
        for lo in tqdm(range(0, len(crops), batch_size), desc=desc, unit="batch", disable=not progress):
            pixels = processor(list(np.asarray(crops[lo:lo + batch_size])), return_tensors="pt")["pixel_values"]
            entering = model.backbone(pixels, output_hidden_states=True).hidden_states[index].float().numpy()
            if out is None:
                out = np.empty((len(crops), *entering.shape[1:]), dtype=np.float16)
            out[lo:lo + len(entering)] = entering
    if out is None:
        raise ValueError("last_stage_inputs: no crops")
    return out


def train_quality_head(folder: str | Path, model: MANIQAForImageQualityAssessment, features: np.ndarray,
                       labels: np.ndarray, train_index: np.ndarray, fit: PhaseConfig, seed: int = 0,
                       progress: bool = True, stage_inputs: np.ndarray | None = None,
                       pairs: GenuinePairs | None = None,
                       label_weight: float = 1.0) -> tuple[MANIQAForImageQualityAssessment, dict]:
    """Fit the head above a frozen trunk on cached ``features`` (the backbone never runs); returns the whole model
    (trunk included) and the per-epoch mean losses. With ``stage_inputs`` (:func:`last_stage_inputs`, rows as in
    ``features``) the trunk's last stage learns too (:class:`TunedLastStage`). With ``pairs`` (genuine pairs of
    label rows and their rejections) the genuine comparisons are fitted beside the labels (:class:`PairFailureTask`;
    the labels' loss weighs ``label_weight``, 0 for the comparisons alone).
    Resumes like :func:`train_quality_network`; the result is ``folder/fit.safetensors``."""
    folder, _, fit_rows, final = _fit_layout(folder, labels, train_index)
    if final.is_file():
        model.load_state_dict(load_file(str(final)))
    else:
        run = phase_train_config("fiqa", folder / "fit", fit, len(fit_rows), seed + 1, model.config, False, progress)
        network = model if stage_inputs is None else TunedLastStage(model)
        if pairs is None:
            task = PseudoLabelTask(run, None, labels, fit_rows, model.config, init_seed=seed, init_model=network,
                                   backbone_features=features, stage_inputs=stage_inputs)
        else:
            task = PairFailureTask(run, labels, fit_rows, model.config, pairs, features, init_seed=seed,
                                   init_model=network, stage_inputs=stage_inputs, label_weight=label_weight)
        train(run, task)
        trained = task.trained_model.network if pairs is not None else task.trained_model
        model = trained.model if stage_inputs is not None else trained
        _save_final(model, final)
    return model.eval(), {"fit": _epoch_losses(folder / "fit")}


@torch.inference_mode()
def predict_from_features(model: MANIQAForImageQualityAssessment, features: np.ndarray,
                          rows: np.ndarray | None = None, batch_size: int = 512,
                          stage_inputs: np.ndarray | None = None) -> np.ndarray:
    """The model's ``score`` from cached backbone features (label units); with ``stage_inputs`` the trunk's last
    stage runs on them (a model fitted with a tuned last stage)."""
    rows = np.arange(len(features)) if rows is None else np.asarray(rows)
    out = np.empty(len(rows), dtype=np.float64)
    tuned = None if stage_inputs is None else TunedLastStage(model).eval()
    model.eval()
    for lo in range(0, len(rows), batch_size):
        index = rows[lo:lo + batch_size]
        maps = torch.from_numpy(np.asarray(features[index], dtype=np.float32))
        if tuned is None:
            out[lo:lo + len(index)] = model(backbone_features=maps).score.double().numpy()
        else:
            entering = torch.from_numpy(np.asarray(stage_inputs[index], dtype=np.float32))
            out[lo:lo + len(index)] = tuned(maps, entering).score.double().numpy()
    return out
