"""From one input row to the crop the recognizer embeds: read an aligned crop, or detect and align a photo.

The preparers are objects, not closures, because they are pickled into DataLoader worker processes
(:func:`hf_fiqa.sharding.prepared_batches`), where each builds its own face detector.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..faces.cropper import FaceCropper
from ..faces.types import CropSpec
from ..io import ImageReadError, load_image
from .inputs import InputItem


@dataclass
class PreparedFace:
    """A crop ready for the embedder, or the reason there is none."""

    crop: np.ndarray | None
    error: str = ""
    n_faces: int | None = None  # None: no detection ran (aligned input)
    det_score: float | None = None


class ReadAlignedCrop:
    """An already aligned crop, read as it is (the recognizer's processor resizes it)."""

    def __call__(self, item: InputItem) -> PreparedFace:
        try:
            return PreparedFace(np.ascontiguousarray(np.asarray(load_image(item.file))))
        except ImageReadError as exc:
            return PreparedFace(None, error=exc.reason)


class DetectAndAlign:
    """The largest face of each photo (the subject, in identity datasets), aligned to ``spec``."""

    def __init__(self, cropper: FaceCropper, spec: CropSpec):
        self.cropper = cropper
        self.spec = spec

    def __call__(self, item: InputItem) -> PreparedFace:
        photo = self.cropper(item.file, specs=(self.spec,), select="largest")
        if photo.error:
            return PreparedFace(None, error=photo.error)
        if not photo.faces:
            return PreparedFace(None, error=photo.reason or "no face detected", n_faces=photo.n_detected)
        return PreparedFace(photo.crops[self.spec][0].crop, n_faces=photo.n_detected,
                            det_score=float(photo.faces[0].score))


class SafePreparer:
    """``prepare`` that never raises: a folder entry left out by the scan, or any reader error, costs one row."""

    def __init__(self, prepare: Callable[[InputItem], PreparedFace]):
        self.prepare = prepare

    def __call__(self, item: InputItem) -> PreparedFace:
        if getattr(item, "skip", ""):
            return PreparedFace(None, error=item.skip)
        try:
            return self.prepare(item)
        except Exception as exc:  # one bad file costs one row, whatever the reader raised
            return PreparedFace(None, error=f"cannot read {item.path}: {type(exc).__name__}: {exc}")


#: (item) -> PreparedFace; must not raise for bad images (return an error instead).
FacePreparer = Callable[[InputItem], PreparedFace]
__all__ = ["DetectAndAlign", "FacePreparer", "PreparedFace", "ReadAlignedCrop", "SafePreparer"]
