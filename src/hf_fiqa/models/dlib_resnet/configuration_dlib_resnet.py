"""Configuration of dlib's ResNet face recognizer (``dlib_face_recognition_resnet_model_v1``).

This file is copied next to saved weights for ``trust_remote_code=True`` loading, so it must
stay self-contained: only ``transformers`` and the standard library, no ``hf_fiqa`` imports.
"""

from __future__ import annotations

from typing import Any, Sequence

from transformers import PretrainedConfig

try:  # transformers >= 5.x keeps it here; earlier 5.x releases under utils
    from transformers.backbone_utils import BackboneConfigMixin
except ImportError:  # pragma: no cover
    from transformers.utils.backbone_utils import BackboneConfigMixin

# Channels and residual blocks of the five stages of dlib's network, input side first. dlib's
# example calls them alevel4 .. alevel0; every stage but the first opens with a downsampling
# block (stride-2 convolution, 2x2 average-pooled shortcut).
DLIB_STAGE_WIDTHS: tuple[int, ...] = (32, 64, 128, 256, 256)
DLIB_STAGE_BLOCKS: tuple[int, ...] = (3, 4, 3, 3, 1)

# dlib's own chip geometry expressed on the 5 landmarks our detectors give (image-left eye
# centre, image-right eye centre, nose tip, image-left mouth corner, image-right mouth corner),
# in pixels of the 150x150 chip. dlib defines its chip by its *own* 5 points (eye corners and
# the base of the nose, ``get_face_chip_details(shape5, 150, 0.25)``), which no other detector
# produces, so the template was measured rather than computed; see ``chip_template.py`` for
# how, on which photos, and the spread.
DLIB_CHIP_TEMPLATE_150: tuple[tuple[float, float], ...] = (
    (45.64, 44.91),  # image-left eye centre
    (101.76, 45.16),  # image-right eye centre
    (74.32, 78.62),  # nose tip
    (48.16, 103.15),  # image-left mouth corner
    (97.71, 103.65),  # image-right mouth corner
)


def _positive_ints(name: str, value: Sequence[int], length: int | None = None) -> list[int]:
    try:
        items = [int(v) for v in value]
        exact = all(int(v) == v for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a list of positive integers, got {value!r}") from None
    if not items or not exact or any(v <= 0 for v in items) or (length is not None and len(items) != length):
        size = f"{length} " if length is not None else ""
        raise ValueError(f"{name} must be a list of {size}positive integers, got {list(value)!r}")
    return items


def _template(value: Any) -> list[list[float]]:
    try:
        points = [[float(x), float(y)] for x, y in value]
    except (TypeError, ValueError):
        raise ValueError(f"alignment_template must be 5 (x, y) points, got {value!r}") from None
    if len(points) != 5:
        raise ValueError(f"alignment_template must be 5 (x, y) points, got {len(points)}")
    return points


class DlibResNetConfig(BackboneConfigMixin, PretrainedConfig):
    """Shape of dlib's metric-learning ResNet and the face chip it expects.

    The defaults are the released ``dlib_face_recognition_resnet_model_v1``: a 150x150 RGB chip,
    7x7/2 convolution to 32 channels, 3x3/2 max-pool, five residual stages
    (``stage_widths`` x ``stage_blocks``), global average pooling and a bias-free projection
    to 128 dimensions. Smaller values make millisecond-fast test models.

    Args:
        stem_width: channels of the 7x7 stride-2 stem convolution.
        stage_widths: channels of each residual stage.
        stage_blocks: residual blocks in each stage; every stage after the first begins with a
            downsampling block (its shortcut is a 2x2 average pool, zero-padded in channels and
            space the way dlib's ``add_prev`` layer pads).
        embedding_size: length of the face descriptor (128).
        image_size: side of the square chip (150). dlib's stride-2 layers use no padding, so the
            spatial sizes (72, 35, 17, 8, 4, 2 for 150) follow from it; the network accepts
            only this size because that is what the weights were trained on.
        num_channels: 3 (RGB).
        distance_threshold: Euclidean distance between descriptors under which dlib declares
            two faces the same person (0.6, the training loss's threshold). Stored because it
            is part of how the released model is meant to be used.
        alignment_template: 5 (x, y) points in chip pixels (eye centres, nose tip, mouth
            corners, image-left first) onto which a similarity transform of detected landmarks
            reproduces dlib's chip; carried with the weights so any aligner can cut the right chip.
        chip_padding: the ``padding`` dlib cuts its chip with (0.25); informational.
        out_features / out_indices: the maps ``DlibResNetBackbone`` (``AutoBackbone``) returns, named from
            ``stage_names`` (``stem``, ``stage1``-``stage5``; sides 35, 35, 17, 8, 4, 2 for 150); the last one by
            default. The descriptor model ignores them.
    """
    # save_pretrained writes this code and an auto_map beside the weights (trust_remote_code loading)
    _auto_class = "AutoConfig"

    model_type = "dlib_resnet"

    def __init__(
        self,
        stem_width: int = 32,
        stage_widths: Sequence[int] = DLIB_STAGE_WIDTHS,
        stage_blocks: Sequence[int] = DLIB_STAGE_BLOCKS,
        embedding_size: int = 128,
        image_size: int = 150,
        num_channels: int = 3,
        distance_threshold: float = 0.6,
        alignment_template: Sequence[Sequence[float]] = DLIB_CHIP_TEMPLATE_150,
        chip_padding: float = 0.25,
        **kwargs: Any,
    ):
        self.stem_width = _positive_ints("stem_width", [stem_width], 1)[0]
        self.stage_widths = _positive_ints("stage_widths", stage_widths)
        self.stage_blocks = _positive_ints("stage_blocks", stage_blocks, len(self.stage_widths))
        self.embedding_size = _positive_ints("embedding_size", [embedding_size], 1)[0]
        self.image_size = _positive_ints("image_size", [image_size], 1)[0]
        self.num_channels = _positive_ints("num_channels", [num_channels], 1)[0]
        if self.feature_map_size < 1:
            raise ValueError(
                f"image_size {image_size} is too small for {len(self.stage_widths)} stages without padding"
            )
        if not float(distance_threshold) > 0:
            raise ValueError(f"distance_threshold must be positive, got {distance_threshold!r}")
        self.distance_threshold = float(distance_threshold)
        self.alignment_template = _template(alignment_template)
        if not float(chip_padding) >= 0:
            raise ValueError(f"chip_padding must be >= 0, got {chip_padding!r}")
        self.chip_padding = float(chip_padding)
        self.stage_names = ["stem"] + [f"stage{i}" for i in range(1, len(self.stage_widths) + 1)]
        self.set_output_features_output_indices(out_features=kwargs.pop("out_features", None),
                                                out_indices=kwargs.pop("out_indices", None))
        super().__init__(**kwargs)

    @property
    def alignment_template_unit(self) -> list[list[float]]:
        """``alignment_template`` in unit-square coordinates (divided by ``image_size``), for aligners that scale it."""
        return [[x / self.image_size, y / self.image_size] for x, y in self.alignment_template]

    @property
    def feature_map_size(self) -> int:
        """Side of the last stage's output (2 for 150): what the global average pool reduces.

        Follows dlib's size rules: unpadded 7x7/2 convolution, unpadded 3x3/2 max-pool, and per
        downsampling block the larger of the unpadded 3x3/2 convolution and the 2x2/2 pool.
        """
        side = (self.image_size - 7) // 2 + 1
        side = (side - 3) // 2 + 1 if side >= 3 else 0
        for _ in self.stage_widths[1:]:
            if side < 3:
                return 0
            side = max((side - 3) // 2 + 1, (side - 2) // 2 + 1)
        return side
