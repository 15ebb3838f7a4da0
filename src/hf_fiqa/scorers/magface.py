"""MagFace quality: the length of a MagFace-trained embedding is the face's quality.

MagFace's loss ties the embedding magnitude to how confidently a face sits near its identity's
centre, so ``||f||`` ranks faces by recognisability (higher = better). The raw magnitude depends
on the checkpoint (about 10-110 for the paper's settings); it is returned unscaled, not
calibrated to [0, 1].
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from ..embedding.embedder import RecognitionEmbedder
from ..faces.types import AlignedFace


class MagFaceQualityScorer:
    """:class:`~hf_fiqa.scorers.QualityScorer` returning the embedding magnitude of a recognizer.

    Args:
        model_or_path: a MagFace-trained recognizer (e.g. converted with
            ``hf-fiqa convert iresnet ... --layout magface``), loaded or as a folder/Hub id.
        image_processor: its processor (loaded from ``model_or_path`` when that is a path).
        device: torch device; CUDA when available by default.
        batch_size: crops per forward pass.
    """

    name = "magface"

    def __init__(self, model_or_path: Any, image_processor: Any = None, device: str | torch.device | None = None,
                 batch_size: int = 64):
        # No flip averaging: MagFace's own feature extraction uses the unflipped crop only, and the
        # sum of two embeddings would change the magnitude scale.
        self.embedder = RecognitionEmbedder(model_or_path, image_processor, device=device, batch_size=batch_size,
                                            flip=False)

    @property
    def crop_size(self) -> int:
        return self.embedder.crop_size

    @property
    def crop_template(self) -> tuple | None:
        return self.embedder.crop_template

    def score(self, faces: Sequence[AlignedFace], batch_size: int | None = None) -> np.ndarray:
        """One float64 magnitude per face (empty input gives an empty array)."""
        if len(faces) == 0:
            return np.zeros(0, dtype=np.float64)
        embeddings = self.embedder.embed(faces, batch_size=batch_size).astype(np.float64)
        return np.linalg.norm(embeddings, axis=1)
