"""Configuration of MUSIQ (Ke et al., ICCV 2021): multi-scale 32x32 patches -> ResNet stem -> Transformer -> [CLS].

The defaults are the released model (google-research/musiq ``run_predict_image.py``): a 5-layer ResNet stem per
patch (7x7/2 root conv, 3x3/2 max-pool, one bottleneck unit of width 64 -> 256 channels, GroupNorm and
weight-standardised convolutions), an 8x8x256 -> 384 linear embedding, 14 pre-norm Transformer layers of width
384 with 6 heads and MLP 1152, a learned 10x10 hash-based spatial embedding, a learned embedding for each of
the 3 scales (224, 384, full resolution), a [CLS] token, and no dropout.

Every geometric constraint is checked here, when the config is built, so a bad config fails with the name of
the field instead of a shape error deep inside ``forward``.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

from transformers import PretrainedConfig

HEADS = ("score", "distribution")
SCORE_LOSSES = ("mse", "l1", "smooth_l1")


# Copied from hf_fiqa.quality_scale.check_label_range
def check_label_range(value: Any, owner: str) -> Optional[list[float]]:
    """``None`` or ``[low, high]`` floats with ``low < high``; anything else raises ``ValueError``."""
    if value is None:
        return None
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{owner}.label_range: must be None or [low, high], got {value!r}") from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"{owner}.label_range: needs finite low < high, got {value!r}")
    return [low, high]


# Copied from hf_fiqa.quality_scale.DEFAULT_QUALITY_BANDS
DEFAULT_QUALITY_BANDS = {"labels": ["poor", "acceptable", "good"], "thresholds": [40.0, 70.0], "temperature": 4.0}


# Copied from hf_fiqa.quality_scale.check_quality_bands
def check_quality_bands(value: Any, owner: str) -> dict:
    """``quality_bands``: labels worst to best, one increasing 0-100 threshold between neighbours, a temperature
    (quality points, > 0) and optionally ``score_range`` ([low, high] of the raw score when there is neither a
    calibration nor a ``label_range``). ``None`` gives the defaults (poor < 40 <= acceptable < 70 <= good)."""
    if value is None:
        return {k: list(v) if isinstance(v, list) else v for k, v in DEFAULT_QUALITY_BANDS.items()}
    if not isinstance(value, dict) or "labels" not in value or "thresholds" not in value:
        raise ValueError(f"{owner}.quality_bands: needs a dict with 'labels' and 'thresholds', got {value!r}")
    labels = [str(v) for v in value["labels"]]
    try:
        thresholds = [float(v) for v in value["thresholds"]]
        temperature = float(value.get("temperature", DEFAULT_QUALITY_BANDS["temperature"]))
    except (TypeError, ValueError):
        raise ValueError(f"{owner}.quality_bands: thresholds and temperature must be numbers") from None
    if len(labels) < 2 or len(set(labels)) != len(labels) or len(thresholds) != len(labels) - 1:
        raise ValueError(f"{owner}.quality_bands: needs 2+ distinct labels and one threshold between neighbours")
    if any(b <= a for a, b in zip(thresholds, thresholds[1:])) or not all(0 <= t <= 100 for t in thresholds):
        raise ValueError(f"{owner}.quality_bands: thresholds must increase within [0, 100], got {thresholds}")
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"{owner}.quality_bands: temperature must be positive, got {temperature}")
    out = {**value, "labels": labels, "thresholds": thresholds, "temperature": temperature}
    if value.get("score_range") is not None:
        out["score_range"] = check_label_range(value["score_range"], owner)
    return out


class MUSIQConfig(PretrainedConfig):
    r"""
    Args:
        patch_size (`int`): side of the square patches cut from every scale (32 in the paper).
        stem_width (`int`): channels of the stem's root convolution; bottleneck stage ``i`` has width
            ``stem_width * 2**i`` and outputs 4x that.
        stem_blocks (`Sequence[int]`): bottleneck units per stem stage. ``(1,)`` is the paper's "ResNet-5"
            stem (one stage, one unit); ``()`` keeps only the root conv + pool. Every stage after the first
            halves the resolution.
        stem_num_groups (`int`): GroupNorm groups in the stem (32, as in the official ResNet).
        hidden_size / num_hidden_layers / num_attention_heads / intermediate_size: Transformer width, depth,
            heads and MLP width (384, 14, 6, 1152).
        spatial_grid_size (`int`): side G of the learned G x G hash-based spatial embedding table.
        num_scales (`int`): rows of the scale embedding table; must match the image processor's scales
            (2 resized scales + full resolution = 3).
        use_scale_embedding (`bool`): add the learned per-scale embedding to every patch token.
        hidden_dropout (`float`): dropout on the token embeddings, after attention and in the MLP.
        attention_dropout (`float`): dropout on the attention weights.
        drop_path (`float`): layer-drop probability of the last layer, rising linearly from 0 at the first.
        layer_norm_eps (`float`): LayerNorm epsilon (1e-6, flax's default, which the checkpoints used).
        head (`str`): "score" regresses one quality value (KonIQ, SPAQ); "distribution" predicts ``num_bins``
            logits whose softmax is a score histogram (AVA), and ``score`` is its expected value on 1..num_bins.
        num_bins (`int`): histogram bins of the distribution head.
        loss_type (`str`, *optional*): "mse" (default), "l1" or "smooth_l1" for the score head; the
            distribution head always uses the EMD loss (r = 2), written "emd".
        label_range (`[float, float]`, *optional*): the units of the labels the model was trained on, e.g.
            ``[1.0, 5.0]`` for a MOS scale or ``[0.0, 100.0]`` for SDD-FIQA pseudo-labels. The head regresses
            labels min-max scaled to [0, 1]; ``forward`` returns ``score`` mapped back to ``low + (high - low) * s``
            (the loss is computed before that mapping, on the [0, 1] target). ``None`` (default, and what
            converted official checkpoints carry): ``score`` is the head's output as it is. Only the score head
            takes a label range (the distribution head's ``score`` is already in bin units, 1..num_bins).
        quality_bands (`dict`, *optional*): ``{"labels": [worst, ..., best], "thresholds": [...], "temperature": t}``,
            the bands ``pipeline("image-classification", ...)`` reports (0-100 thresholds on the calibrated
            ``quality``, else on ``score`` min-max scaled over ``label_range``); ``id2label`` / ``label2id`` follow
            the labels. Default: poor < 40 <= acceptable < 70 <= good, temperature 4.
    """
    # save_pretrained writes this code and an auto_map beside the weights (trust_remote_code loading)
    _auto_class = "AutoConfig"

    model_type = "musiq"

    def __setattr__(self, name: str, value: Any) -> None:
        # Training sets label_range after the model is built; validate it however it is set.
        if name == "label_range":
            value = check_label_range(value, "MUSIQConfig")
        elif name == "quality_bands":
            value = check_quality_bands(value, "MUSIQConfig")
        super().__setattr__(name, value)

    def __init__(
        self,
        patch_size: int = 32,
        stem_width: int = 64,
        stem_blocks: Sequence[int] = (1,),
        stem_num_groups: int = 32,
        hidden_size: int = 384,
        num_hidden_layers: int = 14,
        num_attention_heads: int = 6,
        intermediate_size: int = 1152,
        spatial_grid_size: int = 10,
        num_scales: int = 3,
        use_scale_embedding: bool = True,
        hidden_dropout: float = 0.0,
        attention_dropout: float = 0.0,
        drop_path: float = 0.0,
        layer_norm_eps: float = 1e-6,
        head: str = "score",
        num_bins: int = 10,
        loss_type: Optional[str] = None,
        label_range: Optional[Sequence[float]] = None,
        quality_bands: Optional[dict] = None,
        **kwargs: Any,
    ):
        self.patch_size = int(patch_size)
        self.stem_width = int(stem_width)
        self.stem_blocks = [int(b) for b in stem_blocks]
        self.stem_num_groups = int(stem_num_groups)
        self.hidden_size = int(hidden_size)
        self.num_hidden_layers = int(num_hidden_layers)
        self.num_attention_heads = int(num_attention_heads)
        self.intermediate_size = int(intermediate_size)
        self.spatial_grid_size = int(spatial_grid_size)
        self.num_scales = int(num_scales)
        self.use_scale_embedding = bool(use_scale_embedding)
        self.hidden_dropout = float(hidden_dropout)
        self.attention_dropout = float(attention_dropout)
        self.drop_path = float(drop_path)
        self.layer_norm_eps = float(layer_norm_eps)
        self.head = str(head)
        self.num_bins = int(num_bins)
        if loss_type is None:
            loss_type = "emd" if self.head == "distribution" else "mse"
        self.loss_type = str(loss_type)
        self.label_range = label_range  # checked by __setattr__
        self._validate()
        self.quality_bands = quality_bands  # checked by __setattr__
        labels = self.quality_bands["labels"]
        kwargs["id2label"] = {i: label for i, label in enumerate(labels)}  # the image-classification bands
        kwargs["label2id"] = {label: i for i, label in enumerate(labels)}
        super().__init__(**kwargs)

    @classmethod
    def tiny(cls, **overrides: Any) -> "MUSIQConfig":
        """A ~100k-parameter MUSIQ (16x16 patches, 2 layers x 32 wide, 4x4 hash grid) for tests and smoke runs."""
        values: dict[str, Any] = dict(
            patch_size=16, stem_width=16, stem_blocks=(1,), stem_num_groups=8, hidden_size=32, num_hidden_layers=2,
            num_attention_heads=2, intermediate_size=64, spatial_grid_size=4, num_scales=3,
        )
        values.update(overrides)
        return cls(**values)

    # -- derived geometry ---------------------------------------------------------------------------------------
    @property
    def stem_stride(self) -> int:
        """Total downsampling of the stem: 4 (root conv + pool), times 2 for every stage after the first."""
        return 4 * 2 ** max(len(self.stem_blocks) - 1, 0)

    @property
    def stem_channels(self) -> int:
        """Channels of the stem output (256 for the paper's stem)."""
        if not self.stem_blocks:
            return self.stem_width
        return self.stem_width * 2 ** (len(self.stem_blocks) - 1) * 4

    @property
    def stem_features(self) -> int:
        """Length of one flattened stem output, the input of the patch embedding (8 * 8 * 256 = 16384)."""
        return self.stem_channels * (self.patch_size // self.stem_stride) ** 2

    @property
    def num_outputs(self) -> int:
        """Width of the head: 1 for the score head, ``num_bins`` for the distribution head."""
        return self.num_bins if self.head == "distribution" else 1

    def _validate(self) -> None:
        def fail(field: str, message: str) -> None:
            raise ValueError(f"MUSIQConfig.{field}: {message}")

        for field in ("patch_size", "stem_width", "stem_num_groups", "hidden_size", "num_hidden_layers",
                      "num_attention_heads", "intermediate_size", "spatial_grid_size", "num_scales", "num_bins"):
            if getattr(self, field) <= 0:
                fail(field, f"must be positive, got {getattr(self, field)}")
        if any(b <= 0 for b in self.stem_blocks):
            fail("stem_blocks", f"every stage needs at least one unit, got {self.stem_blocks}")
        if self.patch_size % self.stem_stride:
            fail("patch_size", f"{self.patch_size} is not divisible by the stem's total stride {self.stem_stride} "
                               f"({len(self.stem_blocks)} stem stages)")
        widths = [self.stem_width] + [self.stem_width * 2 ** i for i in range(len(self.stem_blocks))]
        widths += [w * 4 for w in widths[1:]]
        bad = sorted({w for w in widths if w % self.stem_num_groups})
        if bad:
            fail("stem_num_groups", f"{self.stem_num_groups} groups do not divide stem widths {bad}")
        if self.hidden_size % self.num_attention_heads:
            fail("num_attention_heads", f"{self.num_attention_heads} does not divide hidden_size={self.hidden_size}")
        if self.head not in HEADS:
            fail("head", f"must be one of {HEADS}, got {self.head!r}")
        if self.head == "distribution":
            if self.num_bins < 2:
                fail("num_bins", f"the distribution head needs at least 2 bins, got {self.num_bins}")
            if self.loss_type != "emd":
                fail("loss_type", f"the distribution head is trained with the EMD loss ('emd'), got {self.loss_type!r}")
        elif self.loss_type not in SCORE_LOSSES:
            fail("loss_type", f"must be one of {SCORE_LOSSES} for the score head, got {self.loss_type!r}")
        for field in ("hidden_dropout", "attention_dropout", "drop_path"):
            if not 0.0 <= getattr(self, field) < 1.0:
                fail(field, f"must be in [0, 1), got {getattr(self, field)}")
        if self.layer_norm_eps <= 0:
            fail("layer_norm_eps", f"must be positive, got {self.layer_norm_eps}")
        if self.head == "distribution" and self.label_range is not None:
            fail("label_range", "only the score head takes a label range; the distribution head scores in bins")
