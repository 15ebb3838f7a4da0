"""Configuration of MediaPipe's 468-point face mesh landmark model (``face_landmark.tflite``).

This file is copied next to saved weights for ``trust_remote_code=True`` loading, so it must
stay self-contained: only ``transformers`` and the standard library, no ``hf_fiqa`` imports.
"""

from __future__ import annotations

from typing import Sequence

from transformers import PretrainedConfig

# The released network (``mediapipe/modules/face_landmark/face_landmark.tflite`` in the
# ``mediapipe==0.10.14`` wheel), read off its graph by the converter.
FACE_MESH_STAGE_WIDTHS: tuple[int, ...] = (16, 32, 64, 128, 128)
FACE_MESH_STAGE_BLOCKS: tuple[int, ...] = (2, 3, 3, 3, 3)

# MediaPipe's face ROI: a square of 1.5 x the longer side of the face box (``RectTransformationCalculator``
# with ``scale_x: 1.5, scale_y: 1.5, square_long: true`` in ``face_detection_front_detection_to_roi.pbtxt``).
FACE_MESH_ROI_SCALE = 1.5


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _int_list(name: str, value: Sequence[int], length: int | None = None, minimum: int = 1) -> list[int]:
    try:
        items = list(value)
    except TypeError:
        raise ValueError(f"{name} must be a list of integers, got {value!r}") from None
    if (not items or (length is not None and len(items) != length)
            or any(isinstance(v, bool) or not isinstance(v, (int, float)) or int(v) != v or v < minimum for v in items)):
        size = f"{length} " if length is not None else ""
        raise ValueError(f"{name} must be a list of {size}integers >= {minimum}, got {value!r}")
    return [int(v) for v in items]


class FaceMeshConfig(PretrainedConfig):
    """Shape of the face mesh network and the crop it reads.

    The defaults are the released ``face_landmark.tflite`` (about 0.6M parameters): a 192x192 RGB
    crop with values in [0, 1] -> 3x3/2 convolution to ``stage_widths[0]`` channels + PReLU -> stages of
    residual blocks (depthwise 3x3, pointwise 1x1, shortcut, PReLU); every stage but the first
    opens with a stride-2 block whose shortcut is a 2x2 max-pool, zero-padded in channels when the
    stage widens. The 6x6 map then feeds two heads of the same form:

    * landmarks: ``landmark_head_blocks[0]`` blocks at the last stage width (the first one stride 2),
      a 1x1 convolution + PReLU down to ``head_width``, ``landmark_head_blocks[1]`` blocks, and a
      3x3 convolution over the whole 3x3 map to ``3 * num_landmarks`` values ((x, y, z) per point,
      in pixels of the crop);
    * face presence: the same with ``presence_head_blocks``, ending in one logit
      (``sigmoid`` gives MediaPipe's face presence score).

    Args:
        image_size: side of the square crop; a multiple of ``2 ** (len(stage_widths) + 1)``.
        num_landmarks: points predicted (468).
        stage_widths, stage_blocks: channels and residual blocks of each backbone stage (the stem
            convolution gives ``stage_widths[0]`` channels; the first stage keeps its resolution).
        head_width: channels after each head's 1x1 reduction.
        landmark_head_blocks, presence_head_blocks: blocks before and after that reduction.
        roi_scale: side of the crop as a multiple of the longer side of a face box (MediaPipe: 1.5).
        presence_threshold: MediaPipe's face presence threshold on the sigmoid score (0.5).
    """
    # save_pretrained writes this code and an auto_map beside the weights (trust_remote_code loading)
    _auto_class = "AutoConfig"

    model_type = "face_mesh"

    def __init__(
        self,
        image_size: int = 192,
        num_channels: int = 3,
        num_landmarks: int = 468,
        stage_widths: Sequence[int] = FACE_MESH_STAGE_WIDTHS,
        stage_blocks: Sequence[int] = FACE_MESH_STAGE_BLOCKS,
        head_width: int = 32,
        landmark_head_blocks: Sequence[int] = (3, 1),
        presence_head_blocks: Sequence[int] = (1, 1),
        roi_scale: float = FACE_MESH_ROI_SCALE,
        presence_threshold: float = 0.5,
        **kwargs,
    ):
        self.image_size = _positive_int("image_size", image_size)
        self.num_channels = _positive_int("num_channels", num_channels)
        self.num_landmarks = _positive_int("num_landmarks", num_landmarks)
        self.stage_widths = _int_list("stage_widths", stage_widths)
        self.stage_blocks = _int_list("stage_blocks", stage_blocks, length=len(self.stage_widths), minimum=0)
        if self.stage_blocks[1:] and min(self.stage_blocks[1:]) < 1:
            raise ValueError(f"every stage but the first opens with a stride-2 block, so needs >= 1 block: {stage_blocks!r}")
        if any(b < a for a, b in zip(self.stage_widths, self.stage_widths[1:])):
            raise ValueError(f"stage_widths may not shrink (the pooled shortcut is zero-padded): {stage_widths!r}")
        self.head_width = _positive_int("head_width", head_width)
        self.landmark_head_blocks = _int_list("landmark_head_blocks", landmark_head_blocks, length=2, minimum=0)
        self.presence_head_blocks = _int_list("presence_head_blocks", presence_head_blocks, length=2, minimum=0)
        for name, blocks in (("landmark_head_blocks", self.landmark_head_blocks),
                             ("presence_head_blocks", self.presence_head_blocks)):
            if blocks[0] < 1:
                raise ValueError(f"{name}[0] must be >= 1 (the head opens with a stride-2 block), got {blocks}")
        if self.image_size % self.total_stride:
            raise ValueError(f"image_size must be a multiple of {self.total_stride} "
                             f"(1 stem + {len(self.stage_widths) - 1} stage + 1 head stride-2 steps), got {image_size}")
        if not float(roi_scale) > 0:
            raise ValueError(f"roi_scale must be positive, got {roi_scale!r}")
        self.roi_scale = float(roi_scale)
        if not 0.0 <= float(presence_threshold) <= 1.0:
            raise ValueError(f"presence_threshold must lie in [0, 1], got {presence_threshold!r}")
        self.presence_threshold = float(presence_threshold)
        super().__init__(**kwargs)

    @property
    def total_stride(self) -> int:
        """Downsampling from the crop to the heads' last map (64 for the released network)."""
        return 2 ** (len(self.stage_widths) + 1)

    @property
    def head_map_size(self) -> int:
        """Side of the map the heads' last convolution covers whole (3 for 192x192 input)."""
        return self.image_size // self.total_stride

    @classmethod
    def tiny(cls, **overrides) -> "FaceMeshConfig":
        """A config of about two thousand parameters for tests (32x32 crops, 10 landmarks)."""
        values = dict(image_size=32, num_landmarks=10, stage_widths=(4, 8), stage_blocks=(1, 1),
                      head_width=4, landmark_head_blocks=(1, 1), presence_head_blocks=(1, 0))
        values.update(overrides)
        return cls(**values)


__all__ = ["FACE_MESH_ROI_SCALE", "FACE_MESH_STAGE_BLOCKS", "FACE_MESH_STAGE_WIDTHS", "FaceMeshConfig"]
