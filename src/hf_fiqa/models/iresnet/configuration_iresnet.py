"""Configuration of the iResNet face-recognition backbone (insightface ``arcface_torch`` / MagFace).

This file is copied next to saved weights for ``trust_remote_code=True`` loading, so it must
stay self-contained: only ``transformers`` and the standard library, no ``hf_fiqa`` imports.
"""

from __future__ import annotations

from typing import Sequence

from transformers import PretrainedConfig

# Blocks per stage of the published depths (IBasicBlock counts of layer1..layer4).
IRESNET_DEPTHS: dict[int, tuple[int, int, int, int]] = {
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
    50: (3, 4, 14, 3),
    100: (3, 13, 30, 3),
    200: (6, 26, 60, 6),
}


def _positive_ints(name: str, value: Sequence[int], length: int) -> list[int]:
    try:
        items = [int(v) for v in value]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a list of {length} positive integers, got {value!r}") from None
    if len(items) != length or any(v <= 0 for v in items) or any(int(v) != v for v in value):
        raise ValueError(f"{name} must be a list of {length} positive integers, got {list(value)!r}")
    return items


class IResNetConfig(PretrainedConfig):
    """Shape of an iResNet face embedder.

    Args:
        depth: a published depth (18, 34, 50, 100, 200); sets ``layers``. ``None`` when
            ``layers`` describes a custom network (tiny test models, for instance).
        layers: IBasicBlocks in each of the 4 stages. When both ``depth`` and ``layers`` are
            given they must agree. Neither given means iResNet-50.
        stem_width: channels of the 3x3 stem convolution (64 in every published model).
        widths: channels of the 4 stages ((64, 128, 256, 512) in every published model); narrow
            widths make millisecond-fast test models.
        embedding_size: length of the face embedding (512 in the published models).
        image_size: side of the square aligned input. Each stage halves it, so the flattened
            feature map entering ``fc`` is ``widths[3] * (image_size / 16) ** 2``; the released
            weights fix it at 112.
        dropout: dropout on the flattened feature map before ``fc`` (training only).
        bn_eps: BatchNorm epsilon: 1e-5 in ``arcface_torch``, 2e-5 in MagFace's released code.
            It is part of the function the weights were trained for, so converters set it.

    How uint8 pixels become ``pixel_values`` (mean, std, channel order) is the image processor's
    business (:class:`IResNetImageProcessor`, saved next to the weights).
    """
    # save_pretrained writes this code and an auto_map beside the weights (trust_remote_code loading)
    _auto_class = "AutoConfig"

    model_type = "iresnet"

    def __init__(
        self,
        depth: int | None = None,
        layers: Sequence[int] | None = None,
        stem_width: int = 64,
        widths: Sequence[int] = (64, 128, 256, 512),
        embedding_size: int = 512,
        image_size: int = 112,
        num_channels: int = 3,
        dropout: float = 0.0,
        bn_eps: float = 1e-5,
        **kwargs,
    ):
        if depth is None and layers is None:
            depth = 50
        if depth is not None:
            if depth not in IRESNET_DEPTHS:
                raise ValueError(f"depth must be one of {sorted(IRESNET_DEPTHS)} (or None with layers), got {depth!r}")
            expected = list(IRESNET_DEPTHS[depth])
            if layers is not None and _positive_ints("layers", layers, 4) != expected:
                raise ValueError(f"layers={list(layers)} contradicts depth={depth} (which means {expected})")
            layers = expected
        self.depth = depth
        self.layers = _positive_ints("layers", layers, 4)
        self.stem_width = _positive_ints("stem_width", [stem_width], 1)[0]
        self.widths = _positive_ints("widths", widths, 4)
        self.embedding_size = _positive_ints("embedding_size", [embedding_size], 1)[0]
        self.image_size = _positive_ints("image_size", [image_size], 1)[0]
        if self.image_size % 16:
            raise ValueError(f"image_size must be a multiple of 16 (4 stride-2 stages), got {image_size}")
        self.num_channels = _positive_ints("num_channels", [num_channels], 1)[0]
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.dropout = float(dropout)
        if not float(bn_eps) > 0:
            raise ValueError(f"bn_eps must be positive, got {bn_eps!r}")
        self.bn_eps = float(bn_eps)
        super().__init__(**kwargs)

    @property
    def feature_map_size(self) -> int:
        """Side of the last stage's feature map (7 for 112x112 input)."""
        return self.image_size // 16
