"""Batched face embeddings from aligned crops with any recognizer that ships an image processor.

Used by ``hf-fiqa embed``, by evaluation (genuine/impostor similarities) and by the MagFace
quality scorer. The recognizer's processor says how pixels are resized and normalised, so
callers hand over uint8 RGB crops of any size and never repeat that convention.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np
import torch

from ..faces.types import AlignedFace


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_recognizer(model_or_path: Any, image_processor: Any = None,
                    device: str | torch.device | None = None) -> tuple[torch.nn.Module, Any]:
    """``(model in eval mode on device, its image processor)``.

    ``model_or_path``: a loaded model (then ``image_processor`` is required) or anything
    ``from_pretrained`` takes (a folder from ``save_pretrained`` / ``hf-fiqa convert``, a Hub id).
    """
    device = torch.device(device) if device is not None else default_device()
    if isinstance(model_or_path, (str, os.PathLike)):
        from transformers import AutoImageProcessor, AutoModel

        from ..models import register_models

        register_models()  # AutoModel/AutoImageProcessor know every family, with or without auto_map

        try:
            model = AutoModel.from_pretrained(str(model_or_path), trust_remote_code=True)
            if image_processor is None:
                image_processor = AutoImageProcessor.from_pretrained(str(model_or_path), trust_remote_code=True)
        except (OSError, ValueError, KeyError) as exc:
            raise ValueError(f"cannot load a recognition model from {model_or_path}: {exc}") from exc
    elif isinstance(model_or_path, torch.nn.Module):
        model = model_or_path
    else:
        raise TypeError(f"model_or_path must be a model or a path/Hub id, got {type(model_or_path).__name__}")
    config = getattr(model, "config", None)
    if not hasattr(config, "embedding_size"):
        raise ValueError(f"{type(model).__name__} is not a face-recognition model (its config has no embedding_size)")
    if image_processor is None:
        raise ValueError(f"{type(model).__name__} needs its image processor (normalisation lives there)")
    model = model.to(device).eval()
    if device.type == "cpu":
        # oneDNN's fastest layout for the 3x3 convolutions of every recognizer here (about 1.5-2x on CPU).
        model = model.to(memory_format=torch.channels_last)
    return model, image_processor


class RecognitionEmbedder:
    """Turn aligned face crops into raw (unnormalised) embeddings, in batches.

    Args:
        model_or_path: a loaded recognizer or a folder/Hub id to load.
        image_processor: the recognizer's processor (loaded with the model from a path).
        device: torch device; CUDA when available by default.
        batch_size: crops per forward pass.
        flip: also embed the horizontally mirrored crop and add the two embeddings
            (insightface's evaluation protocol; changes magnitudes, so keep it off for MagFace quality).
    """

    def __init__(self, model_or_path: Any, image_processor: Any = None, device: str | torch.device | None = None,
                 batch_size: int = 64, flip: bool = False):
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.model, self.image_processor = load_recognizer(model_or_path, image_processor, device)
        first = next(self.model.parameters())
        self.device, self.dtype = first.device, first.dtype  # a model loaded in bf16/fp16 gets inputs to match
        self.batch_size = int(batch_size)
        self.flip = bool(flip)

    @property
    def crop_size(self) -> int:
        return int(getattr(self.image_processor, "image_size", self.model.config.image_size))

    @property
    def crop_template(self) -> tuple | None:
        """Unit-square landmark template of the recognizer's training crops (None: ArcFace's).

        Configs store it in pixels of ``image_size`` (dlib's ResNet: its 150x150 chip)."""
        template = getattr(self.model.config, "alignment_template", None)
        if template is None:
            return None
        size = float(self.model.config.image_size)  # stored in pixels of the model's input
        return tuple((float(x) / size, float(y) / size) for x, y in template)

    @property
    def embedding_size(self) -> int:
        return int(self.model.config.embedding_size)

    @torch.inference_mode()
    def embed_crops(self, crops: Sequence[np.ndarray], batch_size: int | None = None) -> np.ndarray:
        """``(N, embedding_size)`` float32 embeddings of uint8 RGB crops of any size."""
        n = len(crops)
        step = int(batch_size or self.batch_size)
        out = np.empty((n, self.embedding_size), dtype=np.float32)
        for start in range(0, n, step):
            chunk = [np.asarray(c) for c in crops[start:start + step]]
            for offset, crop in enumerate(chunk):
                if crop.dtype != np.uint8 or crop.ndim != 3 or crop.shape[2] != 3:
                    raise ValueError(f"crop {start + offset}: expected a uint8 HxWx3 RGB array, got {crop.dtype} {crop.shape}")
            pixels = self.image_processor(chunk, return_tensors="pt")["pixel_values"].to(self.device, self.dtype)
            emb = self.model(pixel_values=pixels).embeddings
            if self.flip:
                emb = emb + self.model(pixel_values=pixels.flip(-1)).embeddings
            out[start:start + len(chunk)] = emb.float().cpu().numpy()
        return out

    def embed(self, faces: Sequence[AlignedFace], batch_size: int | None = None) -> np.ndarray:
        """Embeddings of :class:`AlignedFace` records (their ``crop``)."""
        return self.embed_crops([face.crop for face in faces], batch_size=batch_size)
