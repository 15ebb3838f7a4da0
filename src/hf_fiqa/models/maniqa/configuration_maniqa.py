"""Configuration of MANIQA (Yang et al., CVPRW 2022): ViT features -> TAB + Swin stages -> patch-weighted score.

The defaults are the paper's model: timm ``vit_base_patch8_224`` (ViT-B/8 at 224, 28x28 tokens), outputs of
blocks 6-9 concatenated to 3072 channels, two stages of 2 transposed-attention blocks + a Swin stage of
2 groups x 2 blocks (window 4, 4 heads, MLP 768), channel widths 768 then 384.

Every geometric constraint is checked here, when the config is built, so a bad config fails with the name of
the field instead of a shape error deep inside ``forward``.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Optional, Sequence

from transformers import AutoConfig, PretrainedConfig


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


# Copied from hf_fiqa.quality_scale.check_quality_calibration
def check_quality_calibration(value: Any, owner: str) -> Optional[dict]:
    """``None`` or ``{"intercept": a, "slope": b, ...}`` with finite a and nonzero finite b."""
    if value is None:
        return None
    if not isinstance(value, dict) or "intercept" not in value or "slope" not in value:
        raise ValueError(f"{owner}.quality_calibration: must be None or a dict with 'intercept' and 'slope', "
                         f"got {value!r}")
    try:
        intercept, slope = float(value["intercept"]), float(value["slope"])
    except (TypeError, ValueError):
        raise ValueError(f"{owner}.quality_calibration: 'intercept' and 'slope' must be numbers") from None
    if not (math.isfinite(intercept) and math.isfinite(slope) and slope != 0):
        raise ValueError(f"{owner}.quality_calibration: needs a finite intercept and a finite nonzero slope, "
                         f"got {intercept}, {slope}")
    return {**value, "intercept": intercept, "slope": slope}


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


def _backbone_config(value: Any, known: dict) -> Optional[PretrainedConfig]:
    """``None``, a config, or a config's dict (as saved in config.json) made into one: by the class ``known`` names
    for its ``model_type`` (a saved folder's own code), else through ``AutoConfig``."""
    if value is None or isinstance(value, PretrainedConfig):
        return value
    if not isinstance(value, dict) or "model_type" not in value:
        raise ValueError(f"MANIQAConfig.backbone_config: needs a config or a dict with 'model_type', got {value!r}")
    fields = {k: v for k, v in value.items() if k != "model_type"}
    if value["model_type"] in known:
        return known[value["model_type"]](**fields)
    try:
        return AutoConfig.for_model(value["model_type"], **fields)
    except ValueError as error:
        raise ValueError(f"MANIQAConfig.backbone_config: model_type {value['model_type']!r} is unknown to AutoConfig "
                         "(call hf_fiqa.register() first for the recognizer trunks)") from error


class MANIQAConfig(PretrainedConfig):
    r"""
    Args:
        backbone (`str`): timm ViT architecture name; built with ``pretrained=False`` and the geometry below.
        backbone_config (`PretrainedConfig` or `dict`, *optional*): a transformers backbone instead of the ViT
            (``AutoBackbone``, e.g. a ``mobilefacenet`` or ``dlib_resnet`` recognizer's trunk with
            ``out_features``): its maps are average-pooled to ``feature_grid`` x ``feature_grid`` and
            concatenated, in place of the ViT blocks' tokens; ``image_size`` must be the backbone's. The ViT
            fields (``backbone``, ``patch_size``, ``backbone_*``, ``feature_layers``) are then unused. Loading such
            a config needs the backbone's ``model_type`` known to ``AutoConfig`` (``hf_fiqa.register()``).
        feature_grid (`int`, *optional*): side of the token grid with ``backbone_config`` (the coarsest map's
            side, e.g. 7 for MobileFaceNet at 112).
        feature_layers (`Sequence[int]`): 0-based indices of backbone blocks whose outputs are concatenated.
            Blocks after the largest index are never built.
        image_size (`int`): side of the square input crop.
        patch_size (`int`): ViT patch size; ``image_size // patch_size`` is the token grid side.
        backbone_embed_dim / backbone_depth / backbone_num_heads: ViT width, number of blocks and heads.
        embed_dim (`int`): width of stage 1 after the 1x1 projection; stage 2 uses ``embed_dim // 2``.
        num_tab (`int`): transposed-attention blocks per stage.
        swin_depths / swin_num_heads (`Sequence[int]`): blocks and heads per Swin residual group.
        window_size (`int`): Swin window side; must divide the token grid.
        mlp_dim (`int`): hidden width of the Swin MLPs (same in both stages, as in the paper).
        swin_residual_scale (`float`): ``x = scale * group(x) + x`` (0.8 in the paper, 0.13 in some checkpoints).
        dropout (`float`): dropout in TABs, before each Swin stage and in the score/weight heads.
        drop_path (`float`): stochastic depth reached by the last Swin block of a stage.
        num_outputs (`int`): scores per image (1 for MOS regression).
        layer_norm_eps (`float`): LayerNorm epsilon inside the Swin blocks.
        loss_type (`str`): loss when ``labels`` are given: "mse" (MANIQA), "smooth_l1" (SDD-FIQA regressor) or "l1".
        label_range (`[float, float]`, *optional*): the units of the labels the model was trained on, e.g.
            ``[1.0, 5.0]`` for a MOS scale or ``[0.0, 100.0]`` for SDD-FIQA pseudo-labels. The head regresses
            labels min-max scaled to [0, 1]; ``forward`` returns ``score`` mapped back to ``low + (high - low) * s``
            (the loss is computed before that mapping, on the [0, 1] target). ``None`` (default, and what
            converted official checkpoints carry): ``score`` is the head's output as it is.
        quality_calibration (`dict`, *optional*): ``{"intercept": a, "slope": b, "meaning": text, ...}``: the
            0-100 ``quality = 100 / (1 + exp(a + b * score))`` fitted on calibration data (see
            ``hf_fiqa.metrics.calibration``); ``forward`` then also returns ``quality``. Strictly monotone, so
            it keeps every distinction the raw score makes. ``meaning`` says what the number means (for SDD-FIQA
            models: 100 minus the expected percentage of a face's genuine comparisons that fail at a fixed
            false-match rate).
        quality_bands (`dict`, *optional*): ``{"labels": [worst, ..., best], "thresholds": [...], "temperature": t}``,
            the bands ``pipeline("image-classification", ...)`` reports (0-100 thresholds on the calibrated
            ``quality``, else on ``score`` min-max scaled over ``label_range``); ``id2label`` / ``label2id`` follow
            the labels. Default: poor < 40 <= acceptable < 70 <= good, temperature 4.
    """
    # save_pretrained writes this code and an auto_map beside the weights (trust_remote_code loading)
    _auto_class = "AutoConfig"

    model_type = "maniqa"
    # Trunk config classes by model_type, used before AutoConfig: a saved folder's generated code fills it
    # (hf_fiqa.hub.packaging), so that such a folder loads with trust_remote_code alone.
    trunk_config_classes: ClassVar[dict] = {}

    def __setattr__(self, name: str, value: Any) -> None:
        # Training sets label_range after the model is built; validate it however it is set.
        if name == "label_range":
            value = check_label_range(value, "MANIQAConfig")
        elif name == "quality_bands":
            value = check_quality_bands(value, "MANIQAConfig")
        elif name == "quality_calibration":
            value = check_quality_calibration(value, "MANIQAConfig")
        super().__setattr__(name, value)

    def __init__(
        self,
        backbone: str = "vit_base_patch8_224",
        feature_layers: Sequence[int] = (6, 7, 8, 9),
        image_size: int = 224,
        patch_size: int = 8,
        backbone_embed_dim: int = 768,
        backbone_depth: int = 12,
        backbone_num_heads: int = 12,
        embed_dim: int = 768,
        num_tab: int = 2,
        swin_depths: Sequence[int] = (2, 2),
        swin_num_heads: Sequence[int] = (4, 4),
        window_size: int = 4,
        mlp_dim: int = 768,
        swin_residual_scale: float = 0.8,
        dropout: float = 0.1,
        drop_path: float = 0.1,
        num_outputs: int = 1,
        layer_norm_eps: float = 1e-5,
        loss_type: str = "mse",
        label_range: Optional[Sequence[float]] = None,
        quality_bands: Optional[dict] = None,
        quality_calibration: Optional[dict] = None,
        backbone_config: Optional[Any] = None,
        feature_grid: Optional[int] = None,
        **kwargs: Any,
    ):
        self.backbone_config = _backbone_config(backbone_config, type(self).trunk_config_classes)
        self.feature_grid = None if feature_grid is None else int(feature_grid)
        self.backbone = backbone
        self.feature_layers = [int(i) for i in feature_layers]
        self.image_size = int(image_size)
        self.patch_size = int(patch_size)
        self.backbone_embed_dim = int(backbone_embed_dim)
        self.backbone_depth = int(backbone_depth)
        self.backbone_num_heads = int(backbone_num_heads)
        self.embed_dim = int(embed_dim)
        self.num_tab = int(num_tab)
        self.swin_depths = [int(d) for d in swin_depths]
        self.swin_num_heads = [int(h) for h in swin_num_heads]
        self.window_size = int(window_size)
        self.mlp_dim = int(mlp_dim)
        self.swin_residual_scale = float(swin_residual_scale)
        self.dropout = float(dropout)
        self.drop_path = float(drop_path)
        self.num_outputs = int(num_outputs)
        self.layer_norm_eps = float(layer_norm_eps)
        self.loss_type = str(loss_type)
        self.label_range = label_range  # checked by __setattr__
        self.quality_calibration = quality_calibration  # checked by __setattr__
        self._validate()
        self.quality_bands = quality_bands  # checked by __setattr__
        labels = self.quality_bands["labels"]
        kwargs["id2label"] = {i: label for i, label in enumerate(labels)}  # the image-classification bands
        kwargs["label2id"] = {label: i for i, label in enumerate(labels)}
        super().__init__(**kwargs)

    @classmethod
    def tiny(cls, **overrides: Any) -> "MANIQAConfig":
        """A few-hundred-kilobyte MANIQA (ViT 4 blocks x 32 wide at 32x32 input) for tests and smoke runs."""
        values: dict[str, Any] = dict(
            backbone="vit_tiny_patch16_224", image_size=32, patch_size=4, backbone_embed_dim=32, backbone_depth=4,
            backbone_num_heads=2, feature_layers=(1, 2), embed_dim=32, num_tab=2, swin_depths=(2, 2),
            swin_num_heads=(2, 2), window_size=4, mlp_dim=32,
        )
        values.update(overrides)
        return cls(**values)

    @property
    def grid_size(self) -> int:
        """Side of the token grid (28 for ViT-B/8 at 224; ``feature_grid`` on a ``backbone_config``)."""
        if self.backbone_config is not None:
            return self.feature_grid
        return self.image_size // self.patch_size

    def _validate(self) -> None:
        def fail(field: str, message: str) -> None:
            raise ValueError(f"MANIQAConfig.{field}: {message}")

        for field in ("image_size", "patch_size", "backbone_embed_dim", "backbone_depth", "backbone_num_heads",
                      "embed_dim", "window_size", "mlp_dim", "num_outputs"):
            if getattr(self, field) <= 0:
                fail(field, f"must be positive, got {getattr(self, field)}")
        if self.num_tab < 0:
            fail("num_tab", f"must be >= 0, got {self.num_tab}")
        if self.backbone_config is not None:
            if not self.feature_grid or self.feature_grid <= 0:
                fail("feature_grid", f"a positive token grid side is needed with backbone_config, got {self.feature_grid}")
            trunk_size = getattr(self.backbone_config, "image_size", self.image_size)
            if trunk_size != self.image_size:
                fail("image_size", f"{self.image_size} differs from the backbone's image_size {trunk_size}")
        if self.backbone_config is None and self.image_size % self.patch_size:
            fail("image_size", f"{self.image_size} is not divisible by patch_size={self.patch_size}")
        if not self.feature_layers:
            fail("feature_layers", "needs at least one backbone block index")
        if len(set(self.feature_layers)) != len(self.feature_layers):
            fail("feature_layers", f"indices repeat: {self.feature_layers}")
        bad = [i for i in self.feature_layers if not 0 <= i < self.backbone_depth]
        if bad:
            fail("feature_layers", f"indices {bad} are outside the backbone's {self.backbone_depth} blocks (0..{self.backbone_depth - 1})")
        if self.backbone_embed_dim % self.backbone_num_heads:
            fail("backbone_num_heads", f"{self.backbone_num_heads} does not divide backbone_embed_dim={self.backbone_embed_dim}")
        if self.embed_dim % 2:
            fail("embed_dim", f"must be even (stage 2 uses embed_dim // 2), got {self.embed_dim}")
        if self.grid_size % self.window_size:
            fail("window_size", f"{self.window_size} does not divide the {self.grid_size}x{self.grid_size} token grid "
                                f"(image_size {self.image_size} / patch_size {self.patch_size})")
        if len(self.swin_depths) != len(self.swin_num_heads) or not self.swin_depths:
            fail("swin_num_heads", f"needs one entry per Swin group: depths {self.swin_depths}, heads {self.swin_num_heads}")
        for dim in (self.embed_dim, self.embed_dim // 2):
            for heads in self.swin_num_heads:
                if heads <= 0 or dim % heads:
                    fail("swin_num_heads", f"{heads} heads do not divide Swin width {dim}")
        if any(d <= 0 for d in self.swin_depths):
            fail("swin_depths", f"every group needs at least one block, got {self.swin_depths}")
        if self.loss_type not in ("mse", "smooth_l1", "l1"):
            fail("loss_type", f"must be one of mse, smooth_l1, l1; got {self.loss_type!r}")
        for field in ("dropout", "drop_path"):
            if not 0.0 <= getattr(self, field) < 1.0:
                fail(field, f"must be in [0, 1), got {getattr(self, field)}")
