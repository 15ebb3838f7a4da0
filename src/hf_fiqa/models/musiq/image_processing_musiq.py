"""Multi-scale patch sequences for MUSIQ, following the official TensorFlow preprocessing step by step.

For every image (official ``get_multiscale_patches``):

1. pixels -> float32, normalised with ``image_mean`` / ``image_std`` (0.5 / 0.5 gives the official [-1, 1]);
2. for each longer-side length in ``scales`` (sorted ascending, scale ids 0, 1, ...): resize keeping the aspect
   ratio (``round(h * L / max(h, w))``, round-half-even like ``tf.round``) with TensorFlow's GAUSSIAN kernel
   (radius 1.5, sigma 0.5, *no* antialiasing, as ``tf.image.resize`` defaults to); this re-implements
   ``scale_and_translate`` in numpy, see :func:`tf_gaussian_resize`;
3. the full-resolution image last (scale id ``len(scales)``), optionally downscaled first so that its longer side
   is at most ``max_full_side`` (not in the official code: full-resolution sequences get long and slow on CPU);
4. each scale is cut into ``patch_size`` x ``patch_size`` patches in row-major order after TF "SAME" zero padding
   (in normalised units, so the pad is mid-grey), which splits the padding with the extra pixel at the bottom /
   right; the full-resolution patches are cut to the first ``max_full_patches`` (the official
   ``max_seq_len_from_original_res``; None keeps all, as the released config does);
5. patch (i, j) of an H x W patch grid gets the hash cell ``(floor(i*G/H), floor(j*G/W))`` of the G x G spatial
   table, stored as ``row * G + col``. The official code gets it from a legacy nearest-neighbour resize of
   ``range(G)`` in float32, ``floor(float32(i) * float32(G / H))``; that is what is computed here (for G = 10 it
   equals the exact formula for every grid below 205 patches per side).

The official code pads each resized scale to its own maximum length (49 and 144 patches) in the middle of the
sequence; here all real patches come first and the padding goes at the end. Padding is masked out of attention
and the encoder has no index-based position, so the score is the same.

Output (``preprocess``): ``pixel_values`` (B, L, 3, P, P) float32, ``spatial_positions``, ``scale_ids``,
``attention_mask`` (B, L) int64, padded to ``max_seq_len`` (or, when None, to the longest sequence of the call;
longer sequences are cut at the end, i.e. full-resolution patches go first), and ``crop_to_image`` (B,) =
``arange(B)``: one view per image, so that the project's scorers can aggregate as for MANIQA.
"""

from __future__ import annotations

import math
import os
from typing import Any, Iterable, Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image
from transformers.image_processing_utils import BaseImageProcessor, BatchFeature

try:  # inside the hf_fiqa package
    from hf_fiqa.io import ImageReadError, load_image
except ImportError:  # as Hub remote code without hf-fiqa: transformers' own image loader
    from io import BytesIO

    from transformers.image_utils import load_image as _transformers_load_image

    ImageReadError = ValueError

    # Copied from hf_fiqa.models.maniqa.image_processing_maniqa.load_image
    def load_image(source: Any) -> Image.Image:
        """transformers' ``load_image`` (path, URL, base64 or PIL image; EXIF rotation applied, RGB), plus the
        encoded bytes and uint8 RGB arrays that the face pipelines hand over; failures raise ``ValueError``."""
        try:
            if isinstance(source, np.ndarray):
                return _transformers_load_image(Image.fromarray(np.ascontiguousarray(source)))
            if isinstance(source, (bytes, bytearray)):
                return _transformers_load_image(Image.open(BytesIO(source)))
            return _transformers_load_image(os.fspath(source) if isinstance(source, os.PathLike) else source)
        except (OSError, TypeError, ValueError) as exc:
            name = source if isinstance(source, (str, os.PathLike)) else f"<{type(source).__name__}>"
            raise ImageReadError(f"cannot read image {name}: {type(exc).__name__}: {exc}") from None


ImageLike = Union[str, os.PathLike, bytes, Image.Image, np.ndarray]

_GAUSSIAN_RADIUS = 1.5
_GAUSSIAN_SIGMA = _GAUSSIAN_RADIUS / 3.0
_FLOAT32_MIN = float(np.finfo(np.float32).tiny)


def _gaussian_spans(in_size: int, out_size: int, antialias: bool) -> tuple[np.ndarray, np.ndarray]:
    """Source indices and weights (out_size, taps) of TF ``scale_and_translate`` with the Gaussian kernel.

    Follows TensorFlow's ``ComputeSpansCore``: output pixel x samples the input at ``(x + 0.5) / scale``; taps
    are the input pixels within the kernel radius (clamped to the image), weighted by the kernel at the
    distance between pixel centres, normalised to sum to one. With ``antialias`` the kernel is stretched by
    ``1 / scale`` when downscaling.
    """
    scale = np.float32(out_size) / np.float32(in_size)
    inv_scale = np.float32(1.0 / float(scale))
    kernel_scale = np.float32(max(float(inv_scale), 1.0)) if antialias else np.float32(1.0)
    reach = np.float32(_GAUSSIAN_RADIUS) * kernel_scale
    span = min(2 * int(math.ceil(float(reach))) + 1, in_size)

    sample = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * inv_scale
    start = np.clip(np.ceil(sample - reach - np.float32(0.5)).astype(np.int64), 0, in_size - 1)
    end = np.clip(np.floor(sample + reach - np.float32(0.5)).astype(np.int64), 0, in_size - 1) + 1
    taps = start[:, None] + np.arange(span)[None, :]
    inside = taps < end[:, None]
    distance = np.abs((taps.astype(np.float32) + np.float32(0.5) - sample[:, None]) / kernel_scale).astype(np.float64)
    weights = np.where(distance < _GAUSSIAN_RADIUS, np.exp(-distance * distance / (2.0 * _GAUSSIAN_SIGMA ** 2)), 0.0)
    weights = np.where(inside, weights, 0.0).astype(np.float32)
    totals = np.zeros(out_size, dtype=np.float32)
    for k in range(span):  # sequential float32 sum, as the C++ loop
        totals += weights[:, k]
    usable = np.abs(totals) >= 1000.0 * _FLOAT32_MIN
    weights = np.where(usable[:, None], weights * (np.float32(1.0) / np.where(usable, totals, 1.0))[:, None], 0.0)
    return np.minimum(taps, in_size - 1), weights.astype(np.float32)


def tf_gaussian_resize(image: np.ndarray, height: int, width: int, antialias: bool = False) -> np.ndarray:
    """``tf.image.resize(image, (height, width), method=GAUSSIAN, antialias=antialias)`` for an (H, W, C) float
    array: rows first, then columns, float32 accumulation."""
    image = np.asarray(image, dtype=np.float32)
    rows, row_weights = _gaussian_spans(image.shape[0], height, antialias)
    cols, col_weights = _gaussian_spans(image.shape[1], width, antialias)
    tall = np.zeros((height, image.shape[1], image.shape[2]), dtype=np.float32)
    for k in range(rows.shape[1]):
        tall += row_weights[:, k, None, None] * image[rows[:, k]]
    out = np.zeros((height, width, image.shape[2]), dtype=np.float32)
    for k in range(cols.shape[1]):
        out += col_weights[None, :, k, None] * tall[:, cols[:, k]]
    return out


def hash_positions(count_h: int, count_w: int, grid: int) -> np.ndarray:
    """Spatial hash ``row * grid + col`` (count_h * count_w,) of each patch of a count_h x count_w grid, row-major.

    Row i goes to ``floor(i * grid / count_h)`` computed as TF's legacy nearest-neighbour resize does it, in
    float32, clamped to ``grid - 1``.
    """

    def axis(count: int) -> np.ndarray:
        step = np.float32(grid) / np.float32(count)
        cells = np.floor(np.arange(count, dtype=np.float32) * step).astype(np.int64)
        return np.minimum(cells, grid - 1)

    return (axis(count_h)[:, None] * grid + axis(count_w)[None, :]).reshape(-1)


def aspect_resize_shape(height: int, width: int, longer_side: int) -> tuple[int, int]:
    """(h, w) after scaling the longer side to ``longer_side``: float32 ratio, round half to even, at least 1."""
    ratio = np.float32(longer_side) / np.float32(max(height, width))
    return (max(1, int(np.round(np.float32(height) * ratio))), max(1, int(np.round(np.float32(width) * ratio))))


class MUSIQImageProcessor(BaseImageProcessor):
    """Cuts images into MUSIQ's multi-scale patch sequences (see the module docstring for every step).

    Args:
        patch_size (`int`): patch side (32); must equal the model's ``patch_size``.
        spatial_grid_size (`int`): side G of the hash grid (10); must equal the model's ``spatial_grid_size``.
        scales (`Sequence[int]`): longer sides of the resized copies, (224, 384) in the paper; sorted.
        include_full_resolution (`bool`): add the (optionally capped) original image as the last scale.
        max_full_side (`int`, *optional*): downscale the full-resolution scale so its longer side is at most this.
        max_full_patches (`int`, *optional*): keep only the first patches of the full-resolution scale.
        max_seq_len (`int`, *optional*): fixed output length (pad or cut at the end); None pads to the longest.
        antialias (`bool`): widen the Gaussian kernel when downscaling (False in the official code).
        image_mean / image_std: per-channel normalisation of [0, 1] pixels (0.5 / 0.5 -> [-1, 1], official).
        crop_size (`int`): side of the aligned face crops the face pipeline should produce for this model;
            MUSIQ itself takes any size.
    """
    # save_pretrained writes this code and an auto_map beside the weights (trust_remote_code loading)
    _auto_class = "AutoImageProcessor"

    model_input_names = ["pixel_values", "spatial_positions", "scale_ids", "attention_mask"]

    def __init__(
        self,
        patch_size: int = 32,
        spatial_grid_size: int = 10,
        scales: Sequence[int] = (224, 384),
        include_full_resolution: bool = True,
        max_full_side: Optional[int] = None,
        max_full_patches: Optional[int] = None,
        max_seq_len: Optional[int] = None,
        antialias: bool = False,
        image_mean: Sequence[float] = (0.5, 0.5, 0.5),
        image_std: Sequence[float] = (0.5, 0.5, 0.5),
        crop_size: int = 224,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)

        def fail(field: str, message: str) -> None:
            raise ValueError(f"MUSIQImageProcessor.{field}: {message}")

        self.patch_size = int(patch_size)
        self.spatial_grid_size = int(spatial_grid_size)
        self.scales = sorted(int(s) for s in scales)  # sorted, as the official code, so scale ids are stable
        self.include_full_resolution = bool(include_full_resolution)
        self.max_full_side = None if max_full_side is None else int(max_full_side)
        self.max_full_patches = None if max_full_patches is None else int(max_full_patches)
        self.max_seq_len = None if max_seq_len is None else int(max_seq_len)
        self.antialias = bool(antialias)
        self.image_mean = [float(m) for m in image_mean]
        self.image_std = [float(s) for s in image_std]
        self.crop_size = int(crop_size)
        for field in ("patch_size", "spatial_grid_size", "crop_size"):
            if getattr(self, field) <= 0:
                fail(field, f"must be positive, got {getattr(self, field)}")
        for field in ("max_full_side", "max_full_patches", "max_seq_len"):
            if getattr(self, field) is not None and getattr(self, field) <= 0:
                fail(field, f"must be positive or None, got {getattr(self, field)}")
        if any(s <= 0 for s in self.scales) or len(set(self.scales)) != len(self.scales):
            fail("scales", f"longer-side lengths must be positive and distinct, got {list(scales)}")
        if not self.scales and not self.include_full_resolution:
            fail("scales", "no scale left: give at least one longer-side length or include_full_resolution=True")
        if len(self.image_mean) != 3 or len(self.image_std) != 3 or any(s == 0 for s in self.image_std):
            fail("image_std", f"need three means and three non-zero stds, got {self.image_mean}, {self.image_std}")

    @property
    def num_scales(self) -> int:
        """Scale ids this processor emits (the model's ``num_scales`` must be at least this)."""
        return len(self.scales) + int(self.include_full_resolution)

    # -- geometry -------------------------------------------------------------------------------------------
    def scale_shapes(self, height: int, width: int) -> list[tuple[int, int]]:
        """(h, w) of every scale of an image of this size, in scale-id order (resized scales, then full)."""
        shapes = [aspect_resize_shape(height, width, side) for side in self.scales]
        if self.include_full_resolution:
            if self.max_full_side is not None and max(height, width) > self.max_full_side:
                shapes.append(aspect_resize_shape(height, width, self.max_full_side))
            else:
                shapes.append((height, width))
        return shapes

    def patch_grid(self, height: int, width: int) -> tuple[int, int]:
        """Patch rows and columns for one scale of this size (ceil division: SAME padding)."""
        p = self.patch_size
        return -(-height // p), -(-width // p)

    def _patches(self, scaled: np.ndarray) -> np.ndarray:
        """(h, w, 3) -> (rows * cols, 3, P, P) after TF SAME zero padding, row-major."""
        p = self.patch_size
        h, w, c = scaled.shape
        rows, cols = self.patch_grid(h, w)
        pad_h, pad_w = rows * p - h, cols * p - w
        padded = np.pad(scaled, ((pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)))
        return padded.reshape(rows, p, cols, p, c).transpose(0, 2, 4, 1, 3).reshape(rows * cols, c, p, p)

    def image_sequence(self, image: Image.Image) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Unpadded patches (N, 3, P, P), spatial hash positions (N,) and scale ids (N,) of one RGB image."""
        pixels = np.asarray(image, dtype=np.float32) / np.float32(255.0)
        pixels = (pixels - np.asarray(self.image_mean, np.float32)) / np.asarray(self.image_std, np.float32)
        height, width = pixels.shape[:2]
        patches, positions, scale_ids = [], [], []
        for scale_id, (h, w) in enumerate(self.scale_shapes(height, width)):
            scaled = pixels if (h, w) == (height, width) and self._is_full(scale_id) else \
                tf_gaussian_resize(pixels, h, w, self.antialias)
            cut = self._patches(scaled)
            where = hash_positions(*self.patch_grid(h, w), self.spatial_grid_size)
            if self._is_full(scale_id) and self.max_full_patches is not None:
                cut, where = cut[:self.max_full_patches], where[:self.max_full_patches]
            patches.append(cut)
            positions.append(where)
            scale_ids.append(np.full(len(cut), scale_id, dtype=np.int64))
        return np.concatenate(patches), np.concatenate(positions), np.concatenate(scale_ids)

    def _is_full(self, scale_id: int) -> bool:
        return self.include_full_resolution and scale_id == len(self.scales)

    # -- main entry -----------------------------------------------------------------------------------------
    def preprocess(self, images: ImageLike | Iterable[ImageLike], return_tensors: str | None = "pt",
                   **kwargs: Any) -> BatchFeature:
        """Turn one image or a list into padded patch sequences (see the module docstring for the keys).

        Raises :class:`ImageReadError` naming the first input that cannot be read.
        """
        if isinstance(images, (str, os.PathLike, bytes, Image.Image, np.ndarray)):
            images = [images]
        sequences = [self.image_sequence(load_image(source)) for source in images]
        if not sequences:
            raise ValueError("MUSIQImageProcessor.preprocess got no images")
        length = self.max_seq_len or max(len(s[0]) for s in sequences)
        p = self.patch_size
        batch = len(sequences)
        pixel_values = np.zeros((batch, length, 3, p, p), dtype=np.float32)
        positions = np.zeros((batch, length), dtype=np.int64)
        scale_ids = np.zeros((batch, length), dtype=np.int64)
        mask = np.zeros((batch, length), dtype=np.int64)
        for row, (patches, where, scale) in enumerate(sequences):
            n = min(len(patches), length)
            pixel_values[row, :n] = patches[:n]
            positions[row, :n] = where[:n]
            scale_ids[row, :n] = scale[:n]
            mask[row, :n] = 1
        data = {"pixel_values": pixel_values, "spatial_positions": positions, "scale_ids": scale_ids,
                "attention_mask": mask, "crop_to_image": np.arange(batch, dtype=np.int64)}
        return BatchFeature(data=data, tensor_type=return_tensors)

    # Copied from hf_fiqa.models.maniqa.image_processing_maniqa.MANIQAImageProcessor.aggregate_scores
    @staticmethod
    def aggregate_scores(crop_scores: torch.Tensor, crop_to_image: torch.Tensor) -> torch.Tensor:
        """Mean crop score per image, in image order: (num_crops, ...) -> (num_images, ...)."""
        crop_to_image = torch.as_tensor(crop_to_image, device=crop_scores.device)
        num_images = int(crop_to_image.max()) + 1
        shape = (num_images,) + tuple(crop_scores.shape[1:])
        sums = torch.zeros(shape, dtype=crop_scores.dtype, device=crop_scores.device)
        sums.index_add_(0, crop_to_image, crop_scores)
        counts = torch.bincount(crop_to_image, minlength=num_images).to(crop_scores.dtype)
        return sums / counts.view((-1,) + (1,) * (crop_scores.ndim - 1))


__all__ = ["MUSIQImageProcessor", "ImageReadError", "aspect_resize_shape", "hash_positions", "tf_gaussian_resize"]
