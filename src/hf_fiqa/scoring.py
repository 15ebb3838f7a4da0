"""The one interface every face-quality method implements (MANIQA, MagFace, baselines).

The face pipeline detects and aligns faces, then hands each scorer the aligned crops at the
size it asks for; scorers never see detection or file handling. Higher scores mean better
quality for every scorer, so methods can be compared with the same EDC code.
"""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from .faces.types import AlignedFace


@runtime_checkable
class QualityScorer(Protocol):
    name: str
    crop_size: int  # side of the aligned crop this scorer wants (112 for recognition nets, 224 for MANIQA)

    def score(self, faces: Sequence[AlignedFace]) -> np.ndarray:
        """Return one float64 quality per face, higher is better."""
        ...
