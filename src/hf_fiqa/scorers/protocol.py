"""The one interface every face-quality method implements (quality models, MagFace, baselines).

Scorers never see files or detection: they receive aligned face crops, of any size, and return
one number per face, higher meaning better, so every method goes through the same EDC code.
``crop_size`` and ``crop_template`` say which crop a scorer was made for; the face cropper
warps faces straight to it (which keeps more detail than resizing), and a crop of another
size is resized by the scorer itself.
"""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from ..faces.types import AlignedFace, CropSpec


@runtime_checkable
class QualityScorer(Protocol):
    name: str
    crop_size: int  # side of the aligned crop this scorer was made for (112 for recognizers, 224 for MANIQA)

    def score(self, faces: Sequence[AlignedFace], batch_size: int | None = None) -> np.ndarray:
        """One float64 quality per face (crops of any size), higher is better.

        ``batch_size`` bounds the crops per forward pass for scorers that batch (ignored by others).
        """
        ...


def crop_spec(scorer: QualityScorer) -> CropSpec:
    """The crop a scorer wants: its size, and its template when it is not ArcFace's."""
    return CropSpec(scorer.crop_size, getattr(scorer, "crop_template", None))
