"""Weight-free face quality baselines that learned methods must beat.

They follow :class:`hf_fiqa.scorers.QualityScorer` (higher = better) so EDC code treats them
like any model. Geometry and detector-confidence baselines read the detection carried by
:class:`~hf_fiqa.faces.types.AlignedFace`; for already-aligned inputs (``face is None``) that
information does not exist and they raise instead of inventing a value.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from ..faces.alignment import resize_crop
from ..faces.types import AlignedFace, DetectedFace


class MissingDetectionError(ValueError):
    """A baseline needs detection output (landmarks, box, confidence) that an input lacks."""


def _detections(name: str, faces: Sequence[AlignedFace], needs: str) -> list[DetectedFace]:
    missing = [i for i, f in enumerate(faces) if f.face is None]
    if missing:
        raise MissingDetectionError(
            f"quality baseline '{name}' needs the detector's {needs}, but face(s) at position(s) "
            f"{missing[:10]}{'...' if len(missing) > 10 else ''} of {len(faces)} have none (already-aligned "
            "inputs skip detection); run the photos through the face pipeline or use 'sharpness'/'random'"
        )
    return [f.face for f in faces]  # type: ignore[misc]


class InterEyeDistanceScorer:
    """Distance between the two eye landmarks in source-photo pixels (ISO/IEC 29794-5 style).

    More pixels between the eyes means more facial detail reached the recogniser.
    """

    def __init__(self, crop_size: int = 112, name: str = "inter_eye_distance"):
        self.name = name
        self.crop_size = crop_size

    def score(self, faces: Sequence[AlignedFace], batch_size: int | None = None) -> np.ndarray:
        dets = _detections(self.name, faces, "eye landmarks")
        if not dets:
            return np.empty(0, dtype=np.float64)
        eyes = np.stack([np.asarray(d.landmarks, dtype=np.float64)[:2] for d in dets])  # (N, 2, 2)
        return np.linalg.norm(eyes[:, 0] - eyes[:, 1], axis=1)


class FaceSizeScorer:
    """Shorter side of the detected face box in source pixels (:attr:`DetectedFace.size`)."""

    def __init__(self, crop_size: int = 112, name: str = "face_size"):
        self.name = name
        self.crop_size = crop_size

    def score(self, faces: Sequence[AlignedFace], batch_size: int | None = None) -> np.ndarray:
        return np.asarray([d.size for d in _detections(self.name, faces, "face box")], dtype=np.float64)


class DetectorConfidenceScorer:
    """The face detector's confidence; on weak recognisers it was the strongest free baseline."""

    def __init__(self, crop_size: int = 112, name: str = "detector_confidence"):
        self.name = name
        self.crop_size = crop_size

    def score(self, faces: Sequence[AlignedFace], batch_size: int | None = None) -> np.ndarray:
        return np.asarray([d.score for d in _detections(self.name, faces, "confidence")], dtype=np.float64)


class SharpnessScorer:
    """Variance of the Laplacian of the grey aligned crop: blur removes high frequencies.

    Computed on the crop (not the photo), brought to ``crop_size``, so every face is judged at
    the same scale.
    """

    def __init__(self, crop_size: int = 112, name: str = "sharpness"):
        self.name = name
        self.crop_size = crop_size

    def score(self, faces: Sequence[AlignedFace], batch_size: int | None = None) -> np.ndarray:
        import cv2

        out = np.empty(len(faces), dtype=np.float64)
        for i, f in enumerate(faces):
            crop = np.asarray(f.crop)
            if crop.ndim != 3 or crop.shape[2] != 3 or crop.dtype != np.uint8:
                raise ValueError(f"face {i}: expected an HxWx3 uint8 RGB crop, got {crop.dtype} {crop.shape}")
            grey = cv2.cvtColor(resize_crop(crop, self.crop_size), cv2.COLOR_RGB2GRAY)
            out[i] = float(cv2.Laplacian(grey, cv2.CV_64F).var())
        return out


class HeadPoseFivePointScorer:
    """Frontality from the detector's 5 landmarks alone: ``cos(yaw)^2 * cos(roll)^2`` with yaw from the nose offset
    and, beyond 40 degrees, the eye line's foreshortening, and roll from the eye line
    (:mod:`hf_fiqa.components.pose`). A turned head hides half the face; this is the cheapest signal of it."""

    def __init__(self, crop_size: int = 112, name: str = "head_pose_5pt"):
        self.name = name
        self.crop_size = crop_size

    def score(self, faces: Sequence[AlignedFace], batch_size: int | None = None) -> np.ndarray:
        from ..components.pose import combined_yaw, pose_from_five, yaw_from_foreshortening

        dets = _detections(self.name, faces, "five landmarks")
        if not dets:
            return np.empty(0, dtype=np.float64)
        points = np.stack([np.asarray(d.landmarks, dtype=np.float64) for d in dets])
        angles = pose_from_five(points)
        yaw = combined_yaw(angles[:, :1], yaw_from_foreshortening(points))
        return np.cos(np.radians(yaw)) ** 2 * np.cos(np.radians(angles[:, 2])) ** 2


class RandomScorer:
    """Uniform random qualities from a seeded generator: the floor every method must clear."""

    def __init__(self, seed: int = 0, crop_size: int = 112, name: str = "random"):
        self.name = name
        self.crop_size = crop_size
        self.seed = seed
        self._rng = np.random.default_rng(seed)

    def score(self, faces: Sequence[AlignedFace], batch_size: int | None = None) -> np.ndarray:
        return self._rng.random(len(faces))


BASELINES: dict[str, Callable[..., object]] = {
    "inter_eye_distance": InterEyeDistanceScorer,
    "face_size": FaceSizeScorer,
    "detector_confidence": DetectorConfidenceScorer,
    "sharpness": SharpnessScorer,
    "head_pose_5pt": HeadPoseFivePointScorer,
    "random": RandomScorer,
}


def make_baseline(name: str, **kwargs: object):
    """Build a baseline scorer by name (see :data:`BASELINES`)."""
    try:
        return BASELINES[name](**kwargs)
    except KeyError:
        raise ValueError(f"unknown baseline '{name}'; choose from {sorted(BASELINES)}") from None
