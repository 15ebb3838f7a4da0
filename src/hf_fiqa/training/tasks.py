"""The three training tasks: what model, what loss, what evaluation, what gets exported.

- ``iqa``: MANIQA regressing MOS (labels min-max scaled to [0, 1] as in the paper, MSE);
- ``fiqa``: MANIQA on aligned face crops regressing SDD-FIQA pseudo-labels (SmoothL1, as SDD-FIQA's regressor);
- ``recognition``: iResNet / MobileFaceNet with an ArcFace or MagFace head on identities.

Each task builds the image processor it exports, and validation reads images through that processor, so the
validation metrics measure what the exported folder does at inference.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..metrics.pairs import equal_error_rate
from .config import ConfigError, TrainConfig
from .data import ExampleDataset, ProcessorTransform, TaskData, load_fiqa, load_iqa, load_recognition, train_transform

logger = logging.getLogger(__name__)


class Task:
    """Base class; subclasses fill in the model, the data and the metrics.

    The loop calls, in order: ``build_model``, ``build_data`` (a ``None`` validation set: no evaluation, no
    export), ``wrap``, then per epoch ``train_sampler`` and per batch ``loss`` (under the accelerator's autocast),
    and ``evaluate`` / ``export`` every ``eval_every`` steps. After the run, ``trained_model`` is the trained
    module, unwrapped from DDP and from accelerate's mixed-precision forward."""

    primary_metric = "loss"
    higher_is_better = False
    trained_model: nn.Module | None = None

    def __init__(self, config: TrainConfig):
        self.config = config

    def build_model(self) -> nn.Module: ...

    def build_data(self) -> tuple[TaskData | None, torch.utils.data.Dataset, torch.utils.data.Dataset | None]: ...

    def wrap(self, model: nn.Module) -> nn.Module:
        """The module the loop trains and checkpoints (e.g. a backbone with the head build_data sized)."""
        return model

    def loss(self, model: nn.Module, batch: Any) -> torch.Tensor: ...

    def evaluate(self, model: nn.Module, loader, accelerator) -> dict[str, float]: ...

    def export(self, model: nn.Module, folder: Path) -> None: ...

    def sample_weights(self) -> np.ndarray | None:
        return None

    def train_sampler(self, dataset: torch.utils.data.Dataset, epoch: int,
                      generator: torch.Generator) -> torch.utils.data.Sampler:
        """The order of one epoch's examples; it must depend only on (seed, epoch), which exact resuming relies
        on. Default: uniform (or ``sample_weights``) draws from ``generator``, seeded from (seed, epoch)."""
        weights = self.sample_weights()
        if weights is not None:
            return torch.utils.data.WeightedRandomSampler(torch.as_tensor(weights), len(dataset), generator=generator)
        return torch.utils.data.RandomSampler(dataset, generator=generator)


# -- MANIQA regression (iqa, fiqa) --------------------------------------------------------------------------------
class QualityRegressionTask(Task):
    primary_metric = "srcc"
    higher_is_better = True

    def build_model(self) -> nn.Module:
        from ..models.maniqa import MANIQAConfig, MANIQAForImageQualityAssessment

        cfg = self.config.model
        if cfg.init_from:
            model = MANIQAForImageQualityAssessment.from_pretrained(cfg.init_from)
        else:
            kwargs = dict(cfg.kwargs)
            kwargs.setdefault("loss_type", "smooth_l1" if self.config.task == "fiqa" else "mse")
            try:
                config = MANIQAConfig.tiny(**kwargs) if cfg.preset == "tiny" else MANIQAConfig(**kwargs)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"model.kwargs: {exc}") from None
            model = MANIQAForImageQualityAssessment(config)
            if cfg.pretrained_backbone:
                _load_pretrained_vit(model)
        self.model_config = model.config
        return model

    @property
    def image_size(self) -> int:
        return self.config.image_size or self.model_config.image_size

    def build_data(self):
        config = self.config
        self.data = load_iqa(config) if config.task == "iqa" else load_fiqa(config, self.image_size)
        if len(self.data.train) == 0 or len(self.data.validation) == 0:
            raise ConfigError(f"data gives {len(self.data.train)} training and {len(self.data.validation)} validation "
                              "examples; both must be non-empty")
        lo, hi = self.data.label_range
        if not hi > lo:
            raise ConfigError(f"training labels are all equal ({lo}); nothing to learn")
        if config.task == "fiqa" and (lo < 0 or hi > 100):
            raise ConfigError(f"pseudo-labels must lie in [0, 100], found [{lo}, {hi}]")
        # The model maps its [0, 1] output back to these units (MANIQAConfig.label_range); the loss stays on [0, 1].
        self.model_config.label_range = [lo, hi]
        scale = lambda y: np.float32((float(y) - lo) / (hi - lo))  # noqa: E731
        self.processor = self.image_processor()
        mean, std = self.processor.image_mean, self.processor.image_std
        views = "resize" if config.task == "fiqa" else "random_crop"
        train = ExampleDataset(self.data.train, train_transform(self.image_size, mean, std, views), scale,
                               seed=config.seed)
        val = ExampleDataset(self.data.validation, ProcessorTransform(self.processor), float)
        return self.data, train, val

    def image_processor(self):
        """What gets exported, and what validation reads images through: the deterministic view matching the
        training views. ``fiqa`` trains on whole aligned faces squeezed to the input size: ``policy="resize"``.
        ``iqa`` trains on random crops at the image's own resolution (distortions stay visible):
        ``policy="center_crop"``. The face pipeline aligns faces at ``crop_size``, where both policies are the
        whole crop, so it scores exactly the view validation scores."""
        from ..models.maniqa import MANIQAImageProcessor

        policy = "resize" if self.config.task == "fiqa" else "center_crop"
        return MANIQAImageProcessor(crop_size=self.image_size, policy=policy)

    def sample_weights(self) -> np.ndarray | None:
        """Balanced sampling over 10 label bins: pseudo-labels are Beta-shaped, most faces sit mid-range."""
        if not self.config.data.balanced_sampling:
            return None
        labels = np.asarray(self.data.train["label"], dtype=np.float64)
        bins = np.clip(((labels - labels.min()) / (np.ptp(labels) + 1e-12) * 10).astype(int), 0, 9)
        counts = np.bincount(bins, minlength=10)
        return 1.0 / counts[bins]

    def loss(self, model, batch):
        pixels, labels = batch
        return model(pixel_values=pixels, labels=labels).loss

    @torch.no_grad()
    def evaluate(self, model, loader, accelerator) -> dict[str, float]:
        from ..metrics import correlation_table

        preds, targets = [], []
        for pixels, labels in loader:
            score = model(pixel_values=pixels).score.float()  # in label units (config.label_range)
            score, labels = accelerator.gather_for_metrics((score, labels.to(score.device)))
            preds.append(score.cpu().numpy())
            targets.append(labels.float().cpu().numpy())
        pred = np.concatenate(preds).astype(np.float64)
        target = np.concatenate(targets).astype(np.float64)
        table = correlation_table(pred, target)
        metrics = {k: float(table[k]) for k in ("srcc", "plcc_raw", "krcc", "rmse_raw") if k in table}
        metrics["n"] = float(len(pred))
        if self.data.val_embeddings is not None and accelerator.is_main_process:
            metrics.update(self._edc(pred))
        return metrics

    def _edc(self, quality: np.ndarray) -> dict[str, float]:
        """pAUC of the model's quality on validation identities (FNM-EDC from a starting FNMR of 0.1)."""
        from ..metrics import evaluate_fiqa

        identities = np.asarray(self.data.validation["identity"])
        if len(quality) != len(identities):
            return {}
        report = evaluate_fiqa(self.data.val_embeddings, identities, {"model": quality}, fmr_targets=(),
                               start_fnmrs=(0.1,), progress=False)
        return {f"pauc_{label}": float(by_method["model"].pauc) for label, by_method in report.curves.items()}

    def export(self, model, folder: Path) -> None:
        """``save_pretrained`` of model and processor, then the Hub packaging of a quality model (the pipelines
        declared in its config, their code beside the weights); the loop writes the card with the run's results."""
        from ..hub import package_quality_model

        model.save_pretrained(folder)
        self.processor.save_pretrained(folder)
        package_quality_model(folder, write_card=False)


def _load_pretrained_vit(model: nn.Module) -> None:
    """ImageNet weights for MANIQA's ViT (as the paper), through timm; needs the Hub once."""
    import timm

    cfg = model.config
    vit = timm.create_model(cfg.backbone, pretrained=True, img_size=cfg.image_size, patch_size=cfg.patch_size)
    missing, _ = model.backbone.load_state_dict(vit.state_dict(), strict=False)
    if missing:
        raise ConfigError(f"pretrained {cfg.backbone} lacks backbone weights: {missing[:5]}")


# -- recognition --------------------------------------------------------------------------------------------------
class RecognitionModule(nn.Module):
    """Backbone + margin head in one module, so accelerate prepares and checkpoints both."""

    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None):
        return self.backbone(pixel_values=pixel_values, labels=labels, margin_head=self.head if labels is not None else None)


class RecognitionTask(Task):
    primary_metric = "eer"
    higher_is_better = False

    def build_model(self) -> nn.Module:
        cfg = self.config.model
        if cfg.arch == "iresnet":
            from ..models.iresnet import IResNetConfig as Config, IResNetModel as Model

            tiny = dict(layers=(1, 1, 1, 1), widths=(16, 32, 64, 128), stem_width=16, embedding_size=128)
        else:
            from ..models.mobilefacenet import MobileFaceNetConfig as Config, MobileFaceNetModel as Model

            tiny = dict(blocks=(1, 1, 1), stem_width=16, stage_width=32, sep_width=128, embedding_size=128)
        if cfg.init_from:
            self.backbone = Model.from_pretrained(cfg.init_from)
        else:
            kwargs = {**(tiny if cfg.preset == "tiny" else {}), **cfg.kwargs}
            try:
                self.backbone = Model(Config(**kwargs))
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"model.kwargs: {exc}") from None
        self.model_config = self.backbone.config
        return self.backbone  # the head needs the number of classes: see build_data

    @property
    def image_size(self) -> int:
        return self.model_config.image_size

    def build_data(self):
        self.data = load_recognition(self.config, self.image_size)
        if self.data.num_classes < 2:
            raise ConfigError(f"recognition needs at least 2 training identities, found {self.data.num_classes}")
        cfg = self.config.model
        from ..models.margin_heads import ArcFaceHead, MagFaceHead

        head_cls = ArcFaceHead if cfg.head == "arcface" else MagFaceHead
        try:
            self.head = head_cls(self.model_config.embedding_size, self.data.num_classes, **cfg.head_kwargs)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"model.head_kwargs: {exc}") from None
        self.processor = self.image_processor()
        p = self.processor
        train = ExampleDataset(self.data.train, train_transform(self.image_size, p.image_mean, p.image_std, "resize",
                                                               p.channel_order), int, seed=self.config.seed)
        val = ExampleDataset(self.data.validation, ProcessorTransform(p), int)
        return self.data, train, val

    def image_processor(self):
        """The processor of ``model.init_from`` when it has one; otherwise one for the model's input size with the
        ArcFace convention (RGB, mean = std = 0.5)."""
        from ..models.iresnet import IResNetImageProcessor

        if self.config.model.init_from:
            try:
                return IResNetImageProcessor.from_pretrained(self.config.model.init_from)
            except (OSError, ValueError):
                pass
        return IResNetImageProcessor.from_model_config(self.model_config)

    def wrap(self, backbone: nn.Module) -> nn.Module:
        return RecognitionModule(backbone, self.head)

    def loss(self, model, batch):
        pixels, labels = batch
        return model(pixels, labels).loss

    @torch.no_grad()
    def evaluate(self, model, loader, accelerator) -> dict[str, float]:
        """Verification on held-out identities: equal error rate over all genuine and impostor pairs."""
        from ..metrics.pairs import build_pairs, pair_similarities

        chunks = []
        for pixels, _ in loader:
            emb = model(pixels).embeddings.float()
            chunks.append(accelerator.gather_for_metrics(emb).cpu().numpy())
        embeddings = np.concatenate(chunks)
        identities = np.asarray(self.data.validation["identity"])
        pairs = build_pairs(identities, max_impostors=200_000, seed=0)
        genuine = pair_similarities(embeddings, pairs.genuine)
        impostor = pair_similarities(embeddings, pairs.impostor)
        return {"eer": equal_error_rate(genuine, impostor), "genuine_pairs": float(len(genuine)),
                "impostor_pairs": float(len(impostor))}

    def export(self, model, folder: Path) -> None:
        backbone = model.backbone if isinstance(model, RecognitionModule) else model
        backbone.save_pretrained(folder)
        self.processor.save_pretrained(folder)


def make_task(config: TrainConfig) -> Task:
    return RecognitionTask(config) if config.task == "recognition" else QualityRegressionTask(config)
