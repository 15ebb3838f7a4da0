"""The components of every kept face of one decoded photo: the stage that pipeline records, ``score
--components`` columns, video series and the Space share.

:class:`PhotoComponents` is what :class:`hf_fiqa.faces.FaceCropper` calls as its ``annotate`` stage, while the
decoded photo is at hand (in a DataLoader worker when ``--workers`` > 0: it pickles, the face-mesh model with
it), so the photo is decoded once for detection, alignment, dense landmarks and components alike::

    from hf_fiqa.components import PhotoComponents, load_face_mesh
    stage = PhotoComponents(load_face_mesh("out/face-mesh"))  # None: 5-point geometry only
    per_face = stage(rgb, kept_faces, detector.detect(rgb))  # [{name: ComponentResult}], one per kept face

Without a face-mesh model the components that need dense landmarks (eyes open, mouth closed, pitch) carry a
reason, and yaw/roll are 5-point estimates (their ``note`` says so).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..faces.types import DetectedFace
from .base import ComponentResult
from .context import NEEDS_DENSE
from .inputs import FaceInput
from .registry import compute_components_batch

__all__ = ["FACE_MESH_ENV", "PhotoComponents", "load_face_mesh"]

#: Environment variable naming the default face-mesh model (a folder of ``hf-fiqa convert face-mesh``, or a
#: Hub id), read when no model is passed.
FACE_MESH_ENV = "HF_FIQA_FACE_MESH"


def load_face_mesh(name_or_path: str | os.PathLike | None = None, batch_size: int = 16) -> Any | None:
    """A :class:`~hf_fiqa.models.face_mesh.FaceMeshLandmarker` from a converted folder or Hub id, else from
    ``$HF_FIQA_FACE_MESH``; ``None`` when neither names one. A folder that is not a face-mesh model is a
    ``ValueError`` naming it."""
    source = name_or_path or os.environ.get(FACE_MESH_ENV) or None
    if source is None:
        return None
    from ..models.face_mesh import FaceMeshLandmarker

    try:
        return FaceMeshLandmarker.from_pretrained(str(source), batch_size=batch_size)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"cannot load a face-mesh model from {source}: {exc} (make one with "
                         "`hf-fiqa convert face-mesh DST`)") from None


@dataclass
class PhotoComponents:
    """Quality components of the kept faces of a photo (``annotate`` stage of :class:`~hf_fiqa.faces.FaceCropper`).

    ``landmarker``: a face-mesh landmarker (:func:`load_face_mesh`) or ``None``; ``names``: which components
    (default all). Never raises for a bad photo or face: those get reasons, per component.
    """

    landmarker: Any | None = None
    names: tuple[str, ...] | None = None

    def __call__(self, rgb: np.ndarray, faces: Sequence[DetectedFace],
                 all_faces: Sequence[DetectedFace] | None = None) -> list[dict[str, ComponentResult]]:
        faces = list(faces)
        if not faces:
            return []
        dense = presence = None
        mesh_error = None
        if self.landmarker is not None:
            try:
                result = self.landmarker.run_faces(rgb, faces)
                dense, presence = result.landmarks, result.presence
            except Exception as exc:  # noqa: BLE001 - a failed mesh costs the dense components, not the photo
                mesh_error = f"the face mesh failed on this photo ({type(exc).__name__}: {exc})"
        inputs = [FaceInput.from_detection(rgb, face, all_faces=all_faces if all_faces is not None else faces,
                                           dense_landmarks=None if dense is None else dense[i],
                                           dense_presence=None if presence is None else float(presence[i]))
                  for i, face in enumerate(faces)]
        results = compute_components_batch(inputs, self.names)
        if mesh_error is not None:
            results = [{name: ComponentResult(r.name, None, None, r.reason.replace(NEEDS_DENSE, mesh_error), None)
                        if r.reason and NEEDS_DENSE in r.reason else r for name, r in face.items()}
                       for face in results]
        return results
