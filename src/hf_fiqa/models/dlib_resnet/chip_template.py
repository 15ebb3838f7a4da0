"""dlib's face-chip geometry, for cutting chips from our detectors' 5 landmarks.

dlib cuts the recognizer's input with ``get_face_chip_details(shape5, 150, 0.25)``: a
similarity transform fitted from *dlib's* 5 landmarks (outer and inner eye corners, base of the
nose; ``shape_predictor_5_face_landmarks``) onto fixed positions. Our detectors (YuNet,
RetinaFace) give other points: eye centres, nose tip and mouth corners. There is no exact
conversion between the two sets, so :data:`DLIB_CHIP_TEMPLATE_150` was *measured*: where the
YuNet landmarks of a face land inside the chip dlib cuts for that face.

How it was derived (``scripts/dlib_reference_eer.py derive-template --dataset lfw --limit 1000``):
1,000 LFW photos (deep-funneled, 250x250; a seeded random sample over all 6,733) went through
dlib's own pipeline (HOG detector at upsample 1, then 2; the largest face; the 5-point
predictor; ``get_face_chip_details(shape, 150, 0.25)``) and through YuNet
(``hf_fiqa.faces.detection.YuNetDetector``, default settings). For the 999 faces both found
(the YuNet face overlapping dlib's box most, IoU >= 0.3; no face lacked a match), YuNet's 5
landmarks were mapped into dlib's chip with :func:`dlib_chip_affine`; the template is the
per-coordinate median. Spread of the mapped points (median absolute deviation, x/y, pixels of
the 150 chip): eyes 1.8-2.2, nose 5.2/2.3 (yaw moves the tip sideways), mouth corners
2.9-3.3; 5th-95th percentiles span about 9-10 px for eyes and mouth, 27 px for the nose's x.
After each face's own best similarity onto the template, the RMS residual is 2.8 px (median),
6.3 px (90th percentile): the part of dlib's per-face geometry a similarity on *our* points
cannot reproduce, because dlib aligns on eye corners and the nose base, not on mouth corners.
The LFW photos were chosen so that ``celeba-wild-ids``, where the EER comparison is made,
stays held out. Re-derived on the 1,150 CelebA faces instead, the template coordinates move by
0.1-3.0 px (the mouth corners' y most); on CelebA the EER then changes by less than 0.001
(0.0485 -> 0.0477) and FNMR at FMR 1e-3 by +0.008, i.e. the template is not the limiting factor.

Effect (``scripts/dlib_reference_eer.py eval`` on ``celeba-wild-ids``, the 1,158 photos both
pipelines embed): descriptors of our chips have a median cosine of 0.993 with dlib's for the
same photo (5th percentile 0.977); EER 0.0485 against dlib's 0.0472. Warping with dlib's exact
chip transform instead gives cosine 1.000 (5th percentile 0.999) and EER 0.0474, so the
remaining gap is the landmark geometry, not the interpolation.

Helpers:

``dlib_chip_affine(rect, angle, rows, cols)``
    The 2x3 map from photo pixels to chip pixels of a dlib ``chip_details``; the same map as
    dlib's ``get_mapping_to_chip`` (``dlib/image_transforms/interpolation.h``): the rotated
    chip rectangle's top-left, top-right and bottom-right corners go to ``(0, 0)``,
    ``(cols-1, 0)`` and ``(cols-1, rows-1)``.
``similarity_to_template(landmarks, template)``
    Least-squares similarity taking 5 landmarks onto template points in chip pixels
    (``hf_fiqa.faces.alignment.estimate_similarity``).
``cut_dlib_chip(rgb, landmarks, template=DLIB_CHIP_TEMPLATE_150, size=150)``
    A 150x150 chip for the converted model from 5 landmarks, through the package's own face
    alignment (:mod:`hf_fiqa.faces.alignment`: the same similarity fit and anti-aliased warp
    every command uses).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ...faces.alignment import align_faces, estimate_similarity, transform_points
from ...faces.types import CropSpec, DetectedFace
from .configuration_dlib_resnet import DLIB_CHIP_TEMPLATE_150


def dlib_chip_affine(
    rect: Sequence[float], angle: float, rows: int, cols: int
) -> np.ndarray:
    """2x3 affine map from photo pixels to the pixels of dlib's chip ``(rect, angle, rows, cols)``.

    ``rect``: the chip's ``drectangle`` as ``(left, top, right, bottom)`` in photo pixels
    (``chip_details.rect``); ``angle``: its rotation in radians (``chip_details.angle``).
    """
    left, top, right, bottom = (float(v) for v in rect)
    cx, cy = (left + right) / 2.0, (top + bottom) / 2.0
    cos_a, sin_a = np.cos(angle), np.sin(angle)

    def rotate(x: float, y: float) -> tuple[float, float]:
        dx, dy = x - cx, y - cy
        return cos_a * dx - sin_a * dy + cx, sin_a * dx + cos_a * dy + cy

    src = np.array([rotate(left, top), rotate(right, top), rotate(right, bottom)], dtype=np.float64)
    dst = np.array([[0.0, 0.0], [cols - 1.0, 0.0], [cols - 1.0, rows - 1.0]], dtype=np.float64)
    # Solve [x y 1] @ M^T = dst for the 2x3 M (three point pairs fix an affine map exactly).
    design = np.column_stack([src, np.ones(3)])
    return np.linalg.solve(design, dst).T


def similarity_to_template(landmarks: np.ndarray, template: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    """2x3 least-squares similarity taking ``landmarks`` (5, 2) onto ``template`` (5, 2), both in pixels
    of a 150x150 chip (:func:`hf_fiqa.faces.alignment.estimate_similarity` with that template)."""
    return estimate_similarity(landmarks, 150, np.asarray(template, dtype=np.float64) / 150.0)


def cut_dlib_chip(
    rgb: np.ndarray,
    landmarks: np.ndarray,
    template: np.ndarray | Sequence[Sequence[float]] = DLIB_CHIP_TEMPLATE_150,
    size: int = 150,
) -> np.ndarray:
    """A ``size`` x ``size`` chip in dlib's geometry from 5 landmarks (eye centres, nose, mouth corners).

    ``template`` is in pixels of a 150x150 chip (``config.alignment_template``); other sizes
    scale it. The warp is the package's face alignment, the one ``hf-fiqa embed`` uses.
    """
    spec = CropSpec(size, tuple(map(tuple, np.asarray(template, dtype=np.float64) / 150.0)))
    face = DetectedFace(box=np.zeros(4, np.float32), landmarks=np.asarray(landmarks, np.float32), score=1.0)
    return align_faces(rgb, [face], sizes=[spec])[spec][0].crop


__all__ = [
    "DLIB_CHIP_TEMPLATE_150",
    "cut_dlib_chip",
    "dlib_chip_affine",
    "similarity_to_template",
    "transform_points",
]
