"""Image processor of dlib's ResNet face recognizer: face chips -> ``pixel_values``.

dlib's input layer ``input_rgb_image_sized<150>`` (``dlib/dnn/input.h``) turns each 8-bit RGB
pixel into ``(value - channel_mean) / 256`` with the means stored in the model file (122.782,
117.001, 104.298 for R, G, B). This processor does the same arithmetic in float32 (dividing by
256 is exact), so descriptors match dlib's bit for bit up to the network's own rounding.

Inputs may be any size: chips that are not ``size`` x ``size`` are resized with PIL bilinear
(antialiased when shrinking). dlib itself refuses anything but 150x150 chips; resizing here lets
callers feed chips cut at another size, but the most faithful descriptors come from chips cut
at 150 directly (``dlib.get_face_chip(img, shape, 150, 0.25)`` or a similarity warp onto
``config.alignment_template``). Greyscale is replicated to RGB (as dlib's ``assign_image`` does
for 8-bit grey chips); an alpha channel is dropped, keeping the colour values.

This file is copied next to saved weights for ``trust_remote_code=True`` loading, so it imports
only numpy, PIL, torch and transformers.
"""

from __future__ import annotations

import os
from typing import Any, Iterable, Sequence, Union

import numpy as np
from PIL import Image
from transformers.image_processing_utils import BaseImageProcessor, BatchFeature

ImageLike = Union[str, os.PathLike, Image.Image, np.ndarray, Any]

DLIB_IMAGE_MEAN: tuple[float, float, float] = (122.782, 117.001, 104.298)


def _to_rgb_uint8(image: ImageLike, index: int) -> np.ndarray:
    """One input as an ``(H, W, 3)`` uint8 RGB array; raises ``ValueError`` naming the input."""
    if isinstance(image, (str, os.PathLike)):
        try:
            with Image.open(image) as opened:
                image = opened.convert("RGB")
        except OSError as exc:
            raise ValueError(f"image {index} ({os.fspath(image)!r}) cannot be read: {exc}") from None
    if isinstance(image, Image.Image):
        if image.mode != "RGB":
            image = image.convert("RGB")  # L/P/1/I -> grey replicated; RGBA/LA -> alpha dropped
        return np.asarray(image, dtype=np.uint8)
    if hasattr(image, "detach") and hasattr(image, "cpu"):  # a torch tensor, without importing torch
        image = image.detach().cpu().numpy()
    array = np.asarray(image)
    if array.dtype == bool or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(
            f"image {index}: expected 8-bit pixel values (an integer array), got dtype {array.dtype}; "
            "convert float images with (x * 255).round().astype(np.uint8) if they are in [0, 1]"
        )
    if array.size and (array.min() < 0 or array.max() > 255):
        raise ValueError(f"image {index}: pixel values must lie in 0..255, got {array.min()}..{array.max()}")
    array = array.astype(np.uint8, copy=False)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 2, 3, 4):
        raise ValueError(
            f"image {index}: expected (H, W), (H, W, 1), (H, W, 2), (H, W, 3) or (H, W, 4) pixels, got shape {array.shape}"
        )
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(f"image {index} is empty (shape {array.shape})")
    channels = array.shape[2]
    if channels in (1, 2):  # grey (+ alpha)
        array = np.repeat(array[:, :, :1], 3, axis=2)
    elif channels == 4:  # RGBA
        array = array[:, :, :3]
    return np.ascontiguousarray(array)


class DlibResNetImageProcessor(BaseImageProcessor):
    """Face chips (any size, grey/RGB/RGBA) -> ``pixel_values`` ``(B, 3, size, size)`` float32.

    Args:
        size: side of the square chip the network takes (150).
        image_mean: per-channel R, G, B means in 0..255 pixel units, subtracted before dividing
            by ``pixel_divisor``; the converter copies them from the ``.dat`` file.
        pixel_divisor: 256, dlib's constant (not 255: dlib divides by 256.0).
        resample: PIL filter for chips that are not ``size`` x ``size`` (bilinear).
    """
    # save_pretrained writes this code and an auto_map beside the weights (trust_remote_code loading)
    _auto_class = "AutoImageProcessor"

    model_input_names = ["pixel_values"]

    def __init__(
        self,
        size: int = 150,
        image_mean: Sequence[float] = DLIB_IMAGE_MEAN,
        pixel_divisor: float = 256.0,
        resample: int = int(Image.BILINEAR),
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if isinstance(size, dict):  # tolerate transformers' {"height": h, "width": w} convention
            height, width = int(size.get("height", 0)), int(size.get("width", 0))
            if height != width:
                raise ValueError(f"DlibResNetImageProcessor takes square chips, got size {size}")
            size = height
        if int(size) != size or int(size) < 1:
            raise ValueError(f"size must be a positive integer, got {size!r}")
        mean = [float(m) for m in image_mean]
        if len(mean) != 3:
            raise ValueError(f"image_mean must be 3 numbers (R, G, B), got {list(image_mean)!r}")
        if not float(pixel_divisor) > 0:
            raise ValueError(f"pixel_divisor must be positive, got {pixel_divisor!r}")
        self.size = int(size)
        self.image_mean = mean
        self.pixel_divisor = float(pixel_divisor)
        self.resample = int(resample)

    def to_chip(self, image: ImageLike, index: int = 0) -> np.ndarray:
        """One input as the ``(size, size, 3)`` uint8 RGB chip the network sees."""
        rgb = _to_rgb_uint8(image, index)
        if rgb.shape[:2] != (self.size, self.size):
            rgb = np.asarray(Image.fromarray(rgb).resize((self.size, self.size), resample=self.resample))
        return rgb

    def preprocess(
        self,
        images: ImageLike | Iterable[ImageLike],
        return_tensors: str | None = "pt",
        **kwargs: Any,
    ) -> BatchFeature:
        """Turn one chip or a list of chips into ``pixel_values`` ``(B, 3, size, size)`` float32.

        A single array of shape ``(B, H, W, 3)`` (uint8) is taken as a batch of ``B`` chips.
        """
        if isinstance(images, (str, os.PathLike, Image.Image)):
            images = [images]
        elif isinstance(images, np.ndarray) or (hasattr(images, "detach") and hasattr(images, "ndim")):
            images = list(images) if images.ndim == 4 else [images]
        chips = [self.to_chip(image, index) for index, image in enumerate(images)]
        if not chips:
            raise ValueError("DlibResNetImageProcessor.preprocess got no images")
        pixels = np.stack(chips).astype(np.float32)  # (B, S, S, 3), exact integers
        pixels -= np.asarray(self.image_mean, dtype=np.float32)
        pixels /= np.float32(self.pixel_divisor)
        data = {"pixel_values": np.ascontiguousarray(pixels.transpose(0, 3, 1, 2))}
        return BatchFeature(data=data, tensor_type=return_tensors)


__all__ = ["DLIB_IMAGE_MEAN", "DlibResNetImageProcessor"]
