"""Plain records passed between detection, alignment and quality scoring."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(eq=False)
class DetectedFace:
    """One face found in a photo, in that photo's pixel coordinates (after EXIF rotation).

    ``landmarks`` are the 5 points in ArcFace template order: image-left eye, image-right eye,
    nose tip, image-left mouth corner, image-right mouth corner.
    """

    box: np.ndarray  # (4,) float32: x1, y1, x2, y2
    landmarks: np.ndarray  # (5, 2) float32
    score: float  # detector confidence in [0, 1]

    @property
    def size(self) -> float:
        """Shorter side of the box in pixels; what "minimum face size" filters on."""
        return float(min(self.box[2] - self.box[0], self.box[3] - self.box[1]))


@dataclass(eq=False)
class AlignedFace:
    """A face warped onto the ArcFace 5-point template at ``crop.shape[0]`` pixels.

    ``face`` is ``None`` when the input was already an aligned crop (no detection ran).
    """

    crop: np.ndarray  # (S, S, 3) uint8 RGB
    face: DetectedFace | None = None
