"""What the components stage takes: one detected face in its photo.

The components need the photo itself (pixel measures, and the photo's width and height for crops and margins),
the detector's box and 5 landmarks, how many faces the photo held (single face present) and, when a dense
landmark model ran, MediaPipe face-mesh points. Nothing here is computed; :class:`FaceInput` only checks
shapes loosely, because a bad value (NaN landmark, empty photo) must become a *reason* per component, not an
exception at construction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..faces.types import DetectedFace

__all__ = ["DENSE_POINTS", "DENSE_PRESENCE_MIN", "FaceInput"]

#: Number of MediaPipe face-mesh points the dense-landmark components read (a 478-point mesh with iris points
#: is accepted; the 10 iris points are ignored).
DENSE_POINTS = 468
#: Face-mesh presence below which the dense landmarks are not used (MediaPipe's ``min_tracking_confidence``).
DENSE_PRESENCE_MIN = 0.5


@dataclass(eq=False)
class FaceInput:
    """One face to assess.

    ``photo``: (H, W, 3) uint8 RGB, the whole photo the face was detected in (``np.asarray(load_image(...))``).
    ``box``: (4,) x1, y1, x2, y2 in photo pixels. ``landmarks``: (5, 2) in the order of
    :class:`hf_fiqa.faces.DetectedFace` (image-left eye, image-right eye, nose tip, image-left mouth corner,
    image-right mouth corner: YuNet's and ArcFace's order). ``score``: detector confidence.
    ``n_faces``: how many faces the detector found in the photo (``CroppedPhoto.n_detected``); ``None`` when
    unknown. ``other_boxes``: (k, 4) boxes of the other faces in the photo, which OFIQ's single-face measure
    compares areas with; ``None`` when unknown.
    ``dense_landmarks``: optional (468, 3) MediaPipe face-mesh points in photo pixels (x right, y down, z depth
    in the same pixel scale, smaller = nearer the camera, as MediaPipe's output scaled by the photo width).
    ``dense_presence``: the face-mesh model's face presence score for those points (``None``: not known). Below
    ``DENSE_PRESENCE_MIN`` (MediaPipe's own threshold, 0.5) the mesh is not trusted: components that need it
    give a reason and pose falls back to the 5 points, as MediaPipe itself would drop such a mesh.
    """

    photo: np.ndarray
    box: np.ndarray
    landmarks: np.ndarray
    score: float = 1.0
    n_faces: int | None = None
    other_boxes: np.ndarray | None = None
    dense_landmarks: np.ndarray | None = None
    dense_presence: float | None = None

    def __post_init__(self) -> None:
        self.photo = np.asarray(self.photo)
        self.box = np.asarray(self.box, dtype=np.float64).reshape(-1)
        self.landmarks = np.asarray(self.landmarks, dtype=np.float64)
        if self.other_boxes is not None:
            self.other_boxes = np.asarray(self.other_boxes, dtype=np.float64).reshape(-1, 4)
        if self.dense_landmarks is not None:
            self.dense_landmarks = np.asarray(self.dense_landmarks, dtype=np.float64)

    @classmethod
    def from_detection(cls, photo: np.ndarray, face: DetectedFace,
                       all_faces: Sequence[DetectedFace] | None = None,
                       dense_landmarks: np.ndarray | None = None,
                       dense_presence: float | None = None) -> FaceInput:
        """Build from a detector's output: ``face`` and, when given, every face found in the same photo
        (``detector.detect(photo)``), which sets ``n_faces`` and ``other_boxes``."""
        n_faces = other = None
        if all_faces is not None:
            n_faces = len(all_faces)
            others = [f.box for f in all_faces if f is not face]
            if len(others) == n_faces:  # `face` is an equal copy rather than a member: drop the best match
                j = int(np.argmin([np.abs(np.asarray(b) - np.asarray(face.box)).sum() for b in others]))
                others.pop(j)
            other = np.asarray(others, dtype=np.float64).reshape(-1, 4)
        return cls(photo=np.asarray(photo), box=face.box, landmarks=face.landmarks, score=float(face.score),
                   n_faces=n_faces, other_boxes=other, dense_landmarks=dense_landmarks,
                   dense_presence=None if dense_presence is None else float(dense_presence))

    @property
    def height(self) -> int:
        return int(self.photo.shape[0]) if self.photo.ndim >= 2 else 0

    @property
    def width(self) -> int:
        return int(self.photo.shape[1]) if self.photo.ndim >= 2 else 0
