"""Deterministic test-time views for MANIQA.

The official MANIQA averages 20 *random* crops at test time, so the same image gets a different score on
every run. Here each policy is a fixed function of the image:

- ``resize``: the whole image resized to ``crop_size`` (the official KonIQ-10k protocol; and the right choice
  for aligned face crops, which already are the whole input);
- ``center_crop``: one centre crop;
- ``five_crop``: four corners + centre (the official protocol for the other datasets);
- ``grid``: ``grid_rows x grid_cols`` crops spread uniformly over the image.

Images smaller than the crop are upscaled (aspect kept) until the crop fits. ``preprocess`` returns all crops
of all images in ``pixel_values`` and, in ``crop_to_image``, which image each crop belongs to, so that
:meth:`aggregate_scores` can average crop scores per image.
"""

from __future__ import annotations

import os
from typing import Any, Iterable, Sequence, Union

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


POLICIES = ("resize", "center_crop", "five_crop", "grid")
ImageLike = Union[str, os.PathLike, bytes, Image.Image, np.ndarray]


class MANIQAImageProcessor(BaseImageProcessor):
    # save_pretrained writes this code and an auto_map beside the weights (trust_remote_code loading)
    _auto_class = "AutoImageProcessor"
    model_input_names = ["pixel_values"]

    def __init__(
        self,
        crop_size: int = 224,
        policy: str = "resize",
        grid_rows: int = 3,
        grid_cols: int = 3,
        image_mean: Sequence[float] = (0.5, 0.5, 0.5),
        image_std: Sequence[float] = (0.5, 0.5, 0.5),
        resample: int = Image.BICUBIC,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if policy not in POLICIES:
            raise ValueError(f"MANIQAImageProcessor.policy must be one of {POLICIES}, got {policy!r}")
        if crop_size <= 0 or grid_rows <= 0 or grid_cols <= 0:
            raise ValueError("MANIQAImageProcessor: crop_size, grid_rows and grid_cols must be positive")
        self.crop_size = int(crop_size)
        self.policy = policy
        self.grid_rows = int(grid_rows)
        self.grid_cols = int(grid_cols)
        self.image_mean = [float(m) for m in image_mean]
        self.image_std = [float(s) for s in image_std]
        self.resample = int(resample)

    # -- geometry -------------------------------------------------------------------------------------------
    def crop_boxes(self, width: int, height: int) -> list[tuple[int, int, int, int]]:
        """PIL boxes (left, top, right, bottom) of the crops for an image of this size (after any upscaling)."""
        s = self.crop_size
        if self.policy == "center_crop":
            return [_box((width - s) // 2, (height - s) // 2, s)]
        if self.policy == "five_crop":
            return [_box(0, 0, s), _box(width - s, 0, s), _box(0, height - s, s), _box(width - s, height - s, s),
                    _box((width - s) // 2, (height - s) // 2, s)]
        if self.policy == "grid":
            tops = np.linspace(0, height - s, self.grid_rows).round().astype(int)
            lefts = np.linspace(0, width - s, self.grid_cols).round().astype(int)
            return [_box(int(left), int(top), s) for top in tops for left in lefts]
        raise AssertionError(self.policy)

    def views(self, image: Image.Image) -> list[Image.Image]:
        """The crop_size x crop_size RGB views this policy scores for one image."""
        s = self.crop_size
        if self.policy == "resize":
            return [image.resize((s, s), self.resample)]
        width, height = image.size
        if min(width, height) < s:  # upscale so that the crop fits, keeping the aspect ratio
            factor = s / min(width, height)
            width, height = max(s, round(width * factor)), max(s, round(height * factor))
            image = image.resize((width, height), self.resample)
        return [image.crop(box) for box in self.crop_boxes(width, height)]

    # -- main entry -----------------------------------------------------------------------------------------
    def preprocess(self, images: ImageLike | Iterable[ImageLike], return_tensors: str | None = "pt",
                   **kwargs: Any) -> BatchFeature:
        """Turn one image or a list into ``pixel_values`` (num_crops, 3, S, S) and ``crop_to_image`` (num_crops,).

        Raises :class:`ImageReadError` naming the first input that cannot be read.
        """
        if isinstance(images, (str, os.PathLike, bytes, Image.Image, np.ndarray)):
            images = [images]
        crops: list[np.ndarray] = []
        owner: list[int] = []
        for index, source in enumerate(images):
            for view in self.views(load_image(source)):
                crops.append(np.asarray(view, dtype=np.uint8))
                owner.append(index)
        if not crops:
            raise ValueError("MANIQAImageProcessor.preprocess got no images")
        pixels = np.stack(crops).astype(np.float32) / 255.0  # (n, S, S, 3)
        mean = np.asarray(self.image_mean, dtype=np.float32)
        std = np.asarray(self.image_std, dtype=np.float32)
        pixels = ((pixels - mean) / std).transpose(0, 3, 1, 2)
        data = {"pixel_values": np.ascontiguousarray(pixels), "crop_to_image": np.asarray(owner, dtype=np.int64)}
        return BatchFeature(data=data, tensor_type=return_tensors)

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


def _box(left: int, top: int, size: int) -> tuple[int, int, int, int]:
    return (left, top, left + size, top + size)


__all__ = ["MANIQAImageProcessor", "POLICIES", "ImageReadError"]
