"""Image processor of the face-recognition models (iResNet and MobileFaceNet share it).

Aligned uint8 RGB face crops of any size -> ``pixel_values`` ``(B, 3, S, S)`` float32 =
``(x / 255 - mean) / std`` in the checkpoint's channel order. The convention travels with the
weights (``preprocessor_config.json``) because a wrong one silently ruins embeddings:
``arcface_torch`` models use RGB with mean = std = 0.5; MagFace's release uses BGR (OpenCV order)
with mean 0 and std 1.

This file is copied next to saved weights for ``trust_remote_code=True`` loading, so it imports
only numpy, PIL, torch and transformers (OpenCV lazily, for resizing).
"""

from __future__ import annotations

from typing import Any, Sequence, Union

import numpy as np
import torch
from PIL import Image
from transformers.image_processing_utils import BaseImageProcessor, BatchFeature

CHANNEL_ORDERS = ("RGB", "BGR")
ImageLike = Union[np.ndarray, Image.Image]


def _channel_triple(name: str, value: Sequence[float], positive: bool) -> list[float]:
    try:
        items = [float(v) for v in value]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be 3 numbers (one per channel), got {value!r}") from None
    if len(items) != 3 or (positive and any(v <= 0 for v in items)):
        kind = "positive numbers" if positive else "numbers"
        raise ValueError(f"{name} must be 3 {kind} (one per channel), got {list(value)!r}")
    return items


class IResNetImageProcessor(BaseImageProcessor):
    """Face crops -> normalised ``pixel_values`` for iResNet / MobileFaceNet.

    Args:
        image_size: side of the square model input (112 for the released models). Crops of another
            size are resized with OpenCV: ``INTER_AREA`` when either side shrinks, ``INTER_LINEAR``
            when enlarging.
        image_mean, image_std: per-channel, in ``channel_order``, applied to ``x / 255``.
        channel_order: ``"RGB"`` or ``"BGR"``: the order of the channels in ``pixel_values`` (inputs
            are always RGB).
    """
    # save_pretrained writes this code and an auto_map beside the weights (trust_remote_code loading)
    _auto_class = "AutoImageProcessor"

    model_input_names = ["pixel_values"]

    def __init__(
        self,
        image_size: int = 112,
        image_mean: Sequence[float] = (0.5, 0.5, 0.5),
        image_std: Sequence[float] = (0.5, 0.5, 0.5),
        channel_order: str = "RGB",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size <= 0:
            raise ValueError(f"image_size must be a positive integer, got {image_size!r}")
        if channel_order not in CHANNEL_ORDERS:
            raise ValueError(f"channel_order must be 'RGB' or 'BGR', got {channel_order!r}")
        self.image_size = int(image_size)
        self.image_mean = _channel_triple("image_mean", image_mean, positive=False)
        self.image_std = _channel_triple("image_std", image_std, positive=True)
        self.channel_order = channel_order

    @classmethod
    def from_model_config(cls, config: Any, **overrides: Any) -> "IResNetImageProcessor":
        """The processor for a model config trained here: its ``image_size`` with the ArcFace convention
        (RGB, mean = std = 0.5) unless ``overrides`` say otherwise."""
        return cls(**{"image_size": int(config.image_size), **overrides})

    def resize_crop(self, crop: ImageLike, index: int = 0) -> np.ndarray:
        """One crop as a uint8 ``(S, S, 3)`` RGB array, resized when it has another size."""
        if isinstance(crop, Image.Image):
            crop = crop.convert("RGB")
        crop = np.asarray(crop)
        if crop.dtype != np.uint8 or crop.ndim != 3 or crop.shape[2] != 3:
            raise ValueError(f"crop {index}: expected a uint8 HxWx3 RGB array, got dtype {crop.dtype}, shape {crop.shape}")
        size = self.image_size
        if crop.shape[:2] != (size, size):
            import cv2

            shrinking = crop.shape[0] > size or crop.shape[1] > size
            crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
        return crop

    def normalize_crops(self, crops: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 RGB ``(B, S, S, 3)`` -> float32 ``(B, 3, S, S)`` in this processor's order, mean and std."""
        x = torch.as_tensor(np.asarray(crops) if not isinstance(crops, torch.Tensor) else crops)
        x = x.permute(0, 3, 1, 2).float().contiguous().div_(255.0)
        if self.channel_order == "BGR":
            x = x.flip(1)
        mean = torch.tensor(self.image_mean).view(1, 3, 1, 1)
        std = torch.tensor(self.image_std).view(1, 3, 1, 1)
        return (x - mean) / std

    def preprocess(self, images: ImageLike | Sequence[ImageLike], return_tensors: str | None = "pt",
                   **kwargs: Any) -> BatchFeature:
        """One crop or a list (uint8 HxWx3 RGB arrays or PIL images, any size) -> ``{"pixel_values"}``.

        A 4-D uint8 array ``(B, H, W, 3)`` counts as a batch of crops.
        """
        if isinstance(images, Image.Image) or (isinstance(images, np.ndarray) and images.ndim == 3):
            images = [images]
        crops = [self.resize_crop(crop, i) for i, crop in enumerate(images)]
        if not crops:
            raise ValueError("IResNetImageProcessor got no images")
        pixels = self.normalize_crops(np.stack(crops))
        if return_tensors != "pt":
            pixels = pixels.numpy()
        return BatchFeature(data={"pixel_values": pixels}, tensor_type=return_tensors)


__all__ = ["CHANNEL_ORDERS", "IResNetImageProcessor"]
