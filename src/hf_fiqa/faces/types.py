"""Plain records passed between detection, alignment and quality scoring."""

from __future__ import annotations

from dataclasses import dataclass, field

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


@dataclass(frozen=True)
class CropSpec:
    """What a consumer of aligned faces wants: the crop side and the template it was trained on.

    ``template`` holds the 5 landmark positions in unit-square coordinates (ArcFace order), or 3 (eye centres and
    mouth centre);
    ``None`` means the ArcFace template. It is a tuple so specs can key dictionaries: the face
    cropper warps each face once per distinct spec however many scorers share it.
    """

    size: int
    template: tuple[tuple[float, float], ...] | None = field(default=None)

    def __post_init__(self) -> None:
        if int(self.size) != self.size or self.size < 8:
            raise ValueError(f"crop size must be an integer >= 8, got {self.size!r}")
        object.__setattr__(self, "size", int(self.size))
        if self.template is not None:
            points = tuple((float(x), float(y)) for x, y in self.template)
            if len(points) not in (5, 3):
                raise ValueError(f"an alignment template is 5 (or 3: eyes and mouth centre) (x, y) points, "
                                 f"got {len(points)}")
            object.__setattr__(self, "template", points)
