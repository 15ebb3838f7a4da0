"""Photo in, faces and their aligned crops out: the one stage every command shares.

Scoring photos, scoring video frames, scoring a dataset for evaluation, embedding faces and
aligning a dataset all need the same steps: decode the input (EXIF, odd modes), detect,
choose which faces count, warp each onto a template at the sizes its consumers want. Doing
them in one place means one face-selection rule, one set of failure messages, and the same
crop for the same face whichever command produced it.

    cropper = FaceCropper(detector_weights="yunet.onnx")
    photo = cropper("group.jpg", specs=[112, CropSpec(150, dlib_template)], select="largest")
    photo.faces, photo.crops[112], photo.reason, photo.error

Failures never raise: an unreadable input gets ``error``, a photo without a usable face gets
``reason``, so a batch of thousands keeps going past a bad file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Literal, Sequence

import cv2
import numpy as np

from ..io import ImageReadError, describe, load_image
from .alignment import align_faces
from .types import AlignedFace, CropSpec, DetectedFace

NO_FACE = "no face detected"
Selection = Literal["all", "largest", "best"]
#: A stage that needs the decoded photo itself, run while it is at hand: ``(rgb, kept faces, every detected face)
#: -> one value per kept face`` (the quality components of :mod:`hf_fiqa.components` use it).
Annotate = Callable[[np.ndarray, list[DetectedFace], list[DetectedFace]], list]
SELECTIONS: tuple[str, ...] = ("all", "largest", "best")


def face_area(face: DetectedFace) -> float:
    """Box area in photo pixels: what "the largest face" (a portrait's subject) is judged by."""
    return float((face.box[2] - face.box[0]) * (face.box[3] - face.box[1]))


def select_faces(faces: Sequence[DetectedFace], select: Selection = "all",
                 min_face_size: float = 0.0) -> tuple[list[DetectedFace], str | None]:
    """``(kept faces, reason when none is kept)``.

    ``select``: ``"all"`` faces (best detector score first, as detected), the ``"largest"`` one
    (identity datasets, ID photos: the subject fills the frame) or the ``"best"``-scored one.
    ``min_face_size`` drops faces whose box is smaller on its shorter side first.
    """
    if select not in SELECTIONS:
        raise ValueError(f"select must be one of {SELECTIONS}, got {select!r}")
    if not faces:
        return [], NO_FACE
    kept = [f for f in faces if f.size >= min_face_size]
    if not kept:
        return [], f"no face of at least {min_face_size:g} px ({len(faces)} smaller found)"
    if select == "largest":
        kept = [max(kept, key=face_area)]
    elif select == "best":
        kept = [max(kept, key=lambda f: f.score)]
    return kept, None


@dataclass
class CroppedPhoto:
    """One input after detection and alignment.

    ``crops[spec]`` lists one :class:`AlignedFace` per kept face, in the order of ``faces``.
    ``n_detected`` counts every face the detector found, before selection. ``annotations`` holds what an
    ``annotate`` stage returned, one value per kept face (``None`` when none ran).
    """

    source: str
    faces: list[DetectedFace] = field(default_factory=list)
    crops: dict[int | CropSpec, list[AlignedFace]] = field(default_factory=dict)
    n_detected: int | None = None
    reason: str | None = None
    error: str | None = None
    annotations: list[Any] | None = None

    @property
    def ok(self) -> bool:
        return bool(self.faces)


class FaceCropper:
    """Decode, detect, select and align faces.

    Args:
        detector: anything with ``detect(rgb) -> list[DetectedFace]``; built lazily as a
            :class:`~hf_fiqa.faces.YuNetDetector` from ``detector_weights`` when first needed.
        detector_weights: YuNet ONNX path (else ``$HF_FIQA_DETECTOR_WEIGHTS``, else the Hub cache).
        border: how the warp fills what lies outside the photo (see :mod:`hf_fiqa.faces.alignment`).
    """

    def __init__(self, detector: Any = None, detector_weights: str | None = None, border: str = "constant"):
        self._detector = detector
        self.detector_weights = detector_weights
        self.border = border

    @property
    def detector(self) -> Any:
        if self._detector is None:
            from .detection import YuNetDetector

            self._detector = YuNetDetector(self.detector_weights)
        return self._detector

    def __call__(self, item: Any, specs: Iterable[int | CropSpec] = (112,), select: Selection = "all",
                 min_face_size: float = 0.0, annotate: Annotate | None = None) -> CroppedPhoto:
        """Crop the faces of one photo (path, bytes, PIL image or array) at every spec."""
        try:
            rgb = np.asarray(load_image(item))
        except ImageReadError as exc:
            return CroppedPhoto(source=describe(item), error=str(exc))
        return self.crop_array(rgb, specs, select, min_face_size, source=describe(item), annotate=annotate)

    def crop_array(self, rgb: np.ndarray, specs: Iterable[int | CropSpec] = (112,), select: Selection = "all",
                   min_face_size: float = 0.0, source: str | None = None,
                   annotate: Annotate | None = None) -> CroppedPhoto:
        """Detect, select and align on an already decoded ``(H, W, 3)`` uint8 RGB array; ``annotate`` (if given)
        runs on the kept faces too (its failure is the photo's ``error``, like a failed alignment)."""
        photo = CroppedPhoto(source=source or describe(rgb))
        specs = list(specs)
        try:
            found = self.detector.detect(rgb)
            photo.n_detected = len(found)
            photo.faces, photo.reason = select_faces(found, select, min_face_size)
            photo.crops = align_faces(rgb, photo.faces, sizes=specs, border=self.border)
            if annotate is not None and photo.faces:
                photo.annotations = list(annotate(rgb, photo.faces, found))
        except (ValueError, ArithmeticError, RuntimeError, MemoryError, OSError, cv2.error) as exc:
            # A degenerate detection (landmarks far outside the photo, say) must cost one record,
            # not the run; the reason names the input and what failed.
            photo.faces, photo.crops = [], {}
            photo.error = f"face detection/alignment failed on {photo.source}: {type(exc).__name__}: {exc}"
        return photo

    def align(self, rgb: np.ndarray, faces: Sequence[DetectedFace],
              specs: Iterable[int | CropSpec]) -> dict[int | CropSpec, list[AlignedFace]]:
        """Align faces chosen elsewhere (the video tracker picks its own)."""
        return align_faces(rgb, faces, sizes=specs, border=self.border)


@dataclass
class CropTask:
    """One :class:`FaceCropper` call with fixed options, as an object: what a DataLoader worker process runs on
    each photo of a batch (it is pickled there, and the detector rebuilds its OpenCV object on arrival)."""

    cropper: FaceCropper
    specs: tuple[int | CropSpec, ...]
    select: Selection = "all"
    min_face_size: float = 0.0
    annotate: Annotate | None = None

    def __call__(self, item: Any) -> CroppedPhoto:
        return self.cropper(item, specs=self.specs, select=self.select, min_face_size=self.min_face_size,
                            annotate=self.annotate)
