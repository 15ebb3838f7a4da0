"""Batched face embeddings from aligned crops with any of the package's recognition models.

Used by ``hf-fiqa embed``, by SDD-FIQA pseudo-labelling, by evaluation (genuine/impostor
similarities) and by the MagFace quality scorer. The model's own config says how pixels are
normalised, so callers only hand over uint8 RGB crops.
"""

from __future__ import annotations

import os
from typing import Sequence

import cv2
import numpy as np
import torch

from ..faces.types import AlignedFace

def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_recognition_model(model_or_path: object, device: str | torch.device | None = None) -> torch.nn.Module:
    """Return an iResNet/MobileFaceNet model in eval mode on ``device``.

    Accepts a loaded model or anything ``AutoModel.from_pretrained`` takes (a folder written by
    ``save_pretrained`` or ``hf-fiqa convert iresnet``, or a Hub id).
    """
    device = torch.device(device) if device is not None else default_device()
    if isinstance(model_or_path, torch.nn.Module):
        model = model_or_path
    elif isinstance(model_or_path, (str, os.PathLike)):
        # Registers model_type "iresnet" / "mobilefacenet" with AutoModel.
        from . import iresnet as _iresnet  # noqa: F401
        from . import mobilefacenet as _mobilefacenet  # noqa: F401
        from transformers import AutoModel

        try:
            model = AutoModel.from_pretrained(str(model_or_path))
        except (OSError, ValueError, KeyError) as exc:
            raise ValueError(f"cannot load a recognition model from {model_or_path}: {exc}") from exc
    else:
        raise TypeError(f"model_or_path must be a model or a path/Hub id, got {type(model_or_path).__name__}")
    if not hasattr(model, "normalize_images") or not hasattr(getattr(model, "config", None), "image_size"):
        raise ValueError(
            f"{type(model).__name__} is not a face-recognition model of this package (needs normalize_images and config.image_size)"
        )
    return model.to(device).eval()


def _as_crop(crop: np.ndarray, size: int, index: int) -> np.ndarray:
    crop = np.asarray(crop)
    if crop.dtype != np.uint8 or crop.ndim != 3 or crop.shape[2] != 3:
        raise ValueError(f"crop {index}: expected a uint8 HxWx3 RGB array, got {crop.dtype} {crop.shape}")
    if crop.shape[:2] != (size, size):
        shrinking = crop.shape[0] > size or crop.shape[1] > size
        crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    return crop


class RecognitionEmbedder:
    """Turn aligned face crops into raw (unnormalised) embeddings, in batches.

    Args:
        model_or_path: a loaded iResNet/MobileFaceNet or a folder/Hub id to load.
        device: torch device; CUDA when available by default.
        batch_size: crops per forward pass.
        flip: also embed the horizontally mirrored crop and add the two embeddings
            (insightface's evaluation protocol; changes magnitudes, so keep it off for MagFace quality).
    """

    def __init__(
        self,
        model_or_path: object,
        device: str | torch.device | None = None,
        batch_size: int = 64,
        flip: bool = False,
    ):
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.model = load_recognition_model(model_or_path, device)
        first = next(self.model.parameters())
        self.device, self.dtype = first.device, first.dtype  # a model loaded in bf16/fp16 gets inputs to match
        self.batch_size = int(batch_size)
        self.flip = bool(flip)

    @property
    def crop_size(self) -> int:
        return int(self.model.config.image_size)

    @property
    def embedding_size(self) -> int:
        return int(self.model.config.embedding_size)

    @torch.inference_mode()
    def embed_crops(self, crops: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """``(N, embedding_size)`` float32 embeddings of uint8 RGB crops (resized to ``crop_size`` if needed)."""
        n = len(crops)
        out = np.empty((n, self.embedding_size), dtype=np.float32)
        for start in range(0, n, self.batch_size):
            batch = np.stack([_as_crop(crops[i], self.crop_size, i) for i in range(start, min(n, start + self.batch_size))])
            pixels = self.model.normalize_images(batch).to(self.dtype)
            emb = self.model(pixel_values=pixels).embeddings
            if self.flip:
                emb = emb + self.model(pixel_values=pixels.flip(-1)).embeddings
            out[start : start + len(batch)] = emb.float().cpu().numpy()
        return out

    def embed(self, faces: Sequence[AlignedFace]) -> np.ndarray:
        """Embeddings of :class:`AlignedFace` records (their ``crop``)."""
        return self.embed_crops([face.crop for face in faces])
