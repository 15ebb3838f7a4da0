"""Single face present: does one face dominate the photo?

OFIQ (``SingleFacePresent.cpp``): with the two largest detected face boxes of areas a1 >= a2, the native value is
f = a2 / a1 (0 for one face) and the component round(100 (1 - f)). The detector differs (OFIQ: an SSD with
confidence 0.4 and faces of at least 5% of the image; here whichever detector produced ``FaceInput``, e.g. YuNet
with its fallback), so a small background face may count here and not there, or the reverse.
"""

from __future__ import annotations

import numpy as np

from .base import Component, Measured
from .context import FaceBatch

__all__ = ["SingleFacePresent"]


def _area(box: np.ndarray) -> np.ndarray:
    box = np.asarray(box, dtype=np.float64).reshape(-1, 4)
    return np.clip(box[:, 2] - box[:, 0], 0, None) * np.clip(box[:, 3] - box[:, 1], 0, None)


class SingleFacePresent(Component):
    """Second-largest over largest face-box area in the photo (0 when alone); component 100 (1 - f)."""

    name = "single_face_present"
    unit = "area ratio (second / largest face)"
    differs_from_ofiq = "the caller's detector decides which faces count"

    def measure(self, batch: FaceBatch) -> Measured:
        native = np.full(len(batch), np.nan)
        reasons: list[str | None] = []
        for i, face in enumerate(batch.faces):
            others = face.other_boxes
            n = face.n_faces if face.n_faces is not None else (None if others is None else 1 + len(others))
            if n is None:
                reasons.append("number of faces in the photo not given (FaceInput.n_faces / other_boxes)")
            elif n < 1:
                reasons.append(f"n_faces is {n}: this face was not among the photo's detected faces")
            elif n == 1:
                native[i] = 0.0
                reasons.append(None)
            elif others is None or len(others) != n - 1:
                reasons.append(f"{n} faces detected; the area ratio needs the other {n - 1} boxes "
                               "(FaceInput.other_boxes, or FaceInput.from_detection with all faces)")
            else:
                areas = np.sort(np.concatenate([_area(face.box), _area(others)]))[::-1]
                if not np.isfinite(areas).all() or areas[0] <= 0:
                    reasons.append("face boxes are empty or not finite")
                else:
                    native[i] = areas[1] / areas[0]
                    reasons.append(None)
        return Measured(native, reasons)

    def to_component(self, native: np.ndarray) -> np.ndarray:
        return 100.0 * (1.0 - native)
