"""Face alignment: warp a detected face onto the ArcFace 5-point template.

Public API
----------
``ARCFACE_TEMPLATE_112``
    The (5, 2) landmark positions of the standard 112x112 ArcFace crop: image-left eye,
    image-right eye, nose tip, image-left mouth corner, image-right mouth corner.
``template_for(size, template=None)``
    The same geometry scaled to a ``size`` x ``size`` crop. MANIQA reads 224x224 crops: warping
    the original photo straight to 224 keeps twice the detail that an upsampled 112 crop has.
    ``template`` (5 points in unit-square coordinates) replaces the ArcFace geometry for
    recognizers trained on another crop (dlib's ResNet, for instance).
``resize_crop(crop, size)``
    An already aligned crop brought to another side length (area filter when shrinking).
``estimate_similarity(landmarks, size=112)``
    The 2x3 similarity (rotation, uniform scale, translation) taking the detected landmarks
    onto ``template_for(size)`` in the least-squares sense.
``align_face(image, face, size=112, border="constant")``
    One :class:`AlignedFace` (``crop`` (size, size, 3) uint8 RGB).
``align_faces(image, faces, sizes=(112,), border="constant")``
    ``{size: [AlignedFace per face, in order]}``; a size may also be a :class:`CropSpec`
    (size and template): decodes ``image`` once and warps every face
    once per requested size, which is how the pipeline feeds scorers with different
    ``crop_size``.

Choices, and why
----------------
* Least squares over all five points, solved exactly with ``numpy.linalg.lstsq``. Writing the
  similarity as ``[[a, -b, tx], [b, a, ty]]`` makes the residual linear in (a, b, tx, ty), so
  the 10x4 linear solve *is* the optimum; it equals Umeyama's closed form without reflection,
  i.e. what insightface's ``norm_crop`` (scikit-image ``SimilarityTransform``) computes and
  what ArcFace-style recognisers, and hence SDD-FIQA labels, were made with. We do not use
  ``cv2.estimateAffinePartial2D``: its robust estimators (RANSAC/LMEDS) fit 2-point samples
  and may discard a landmark (typically the nose on a turned head), giving crops that differ
  from the reference crops exactly on the hard faces a quality model must judge.
* Border ``"constant"`` (black) by default for faces cut by the photo edge. It matches the
  reference preprocessing (insightface warps with a black border), and it keeps the missing
  part visibly missing. ``"reflect"`` would mirror half a face into a plausible whole one,
  hiding precisely the defect a quality score should penalise; ``"replicate"`` smears edge
  pixels into streaks. Both stay available for users who prefer them.
* Anti-aliasing: a face much larger than the crop (a 600-px face to 112) is first shrunk with
  ``INTER_AREA`` around the face, then warped. Bilinear warping alone would alias, adding
  false high-frequency detail that a sharpness-sensitive quality model reads as texture.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import cv2
import numpy as np

from ..io import ImageInput
from ._rgb import as_rgb_array
from .types import AlignedFace, CropSpec, DetectedFace

ARCFACE_TEMPLATE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)
ARCFACE_TEMPLATE_112.setflags(write=False)
ARCFACE_TEMPLATE = ARCFACE_TEMPLATE_112 / 112.0  # unit-square coordinates
ARCFACE_TEMPLATE.setflags(write=False)

BORDER_MODES = {
    "constant": cv2.BORDER_CONSTANT,
    "replicate": cv2.BORDER_REPLICATE,
    "reflect": cv2.BORDER_REFLECT_101,
}

# Shrinking by more than this (crop pixels per source pixel below it) is pre-filtered.
_ANTIALIAS_BELOW = 0.75


def template_for(size: int, template: np.ndarray | Sequence[Sequence[float]] | None = None) -> np.ndarray:
    """The template points in pixels of a ``size`` x ``size`` crop.

    ``template``: the points in unit-square coordinates (default: ArcFace's geometry): 5 points in ArcFace order,
    or 3 (the two eye centres and the mouth centre, as LightQNet aligns).
    """
    if int(size) != size or size < 8:
        raise ValueError(f"crop size must be an integer >= 8, got {size!r}")
    if template is None:
        return ARCFACE_TEMPLATE_112 * (float(size) / 112.0)
    points = np.asarray(template, dtype=np.float64)
    if points.shape not in ((5, 2), (3, 2)) or not np.isfinite(points).all():
        raise ValueError(f"an alignment template is 5 (or 3) finite (x, y) points, got shape {points.shape}")
    return points * float(size)


def _check_landmarks(landmarks: np.ndarray) -> np.ndarray:
    pts = np.asarray(landmarks, dtype=np.float64)
    if pts.shape != (5, 2):
        raise ValueError(f"expected 5 landmarks of shape (5, 2), got shape {pts.shape}")
    if not np.isfinite(pts).all():
        raise ValueError("landmarks contain NaN or inf")
    if np.ptp(pts, axis=0).max() < 1e-6:
        raise ValueError("landmarks are all at the same point; no similarity transform exists")
    return pts


def estimate_similarity(landmarks: np.ndarray, size: int = 112,
                        template: np.ndarray | Sequence[Sequence[float]] | None = None) -> np.ndarray:
    """2x3 float64 matrix of the least-squares similarity mapping ``landmarks`` to the template.

    ``landmarks``: (5, 2) points in photo pixels, ArcFace order. Apply the result to points
    with :func:`transform_points` or to the photo with ``cv2.warpAffine``.
    """
    src = _check_landmarks(landmarks)
    dst = template_for(size, template)
    if len(dst) == 3:  # eye centres and mouth centre
        src = np.stack([src[0], src[1], src[3:5].mean(0)])
    n = len(src)
    # x' = a x - b y + tx ;  y' = b x + a y + ty  -> rows of a (2n)x4 linear system.
    rows = np.zeros((2 * n, 4))
    rows[0::2] = np.column_stack([src[:, 0], -src[:, 1], np.ones(n), np.zeros(n)])
    rows[1::2] = np.column_stack([src[:, 1], src[:, 0], np.zeros(n), np.ones(n)])
    (a, b, tx, ty), *_ = np.linalg.lstsq(rows, dst.reshape(-1), rcond=None)
    return np.array([[a, -b, tx], [b, a, ty]], dtype=np.float64)


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine ``matrix`` to (N, 2) ``points``."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return pts @ np.asarray(matrix, dtype=np.float64)[:, :2].T + np.asarray(matrix, dtype=np.float64)[:, 2]


def _as_3x3(m: np.ndarray) -> np.ndarray:
    return np.vstack([m, [0.0, 0.0, 1.0]])


def _warp(rgb: np.ndarray, matrix: np.ndarray, size: int, border: int) -> np.ndarray:
    """``cv2.warpAffine`` to ``size`` x ``size``, shrinking the face region first when needed."""
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    if scale < _ANTIALIAS_BELOW:
        h, w = rgb.shape[:2]
        inv = cv2.invertAffineTransform(matrix)
        corners = transform_points(inv, np.array([[0, 0], [size, 0], [0, size], [size, size]], dtype=np.float64))
        margin = int(np.ceil(2.0 / scale)) + 2  # room for the bilinear taps after shrinking
        x0 = max(0, int(np.floor(corners[:, 0].min())) - margin)
        y0 = max(0, int(np.floor(corners[:, 1].min())) - margin)
        x1 = min(w, int(np.ceil(corners[:, 0].max())) + margin)
        y1 = min(h, int(np.ceil(corners[:, 1].max())) + margin)
        if x1 - x0 >= 2 and y1 - y0 >= 2:
            region = rgb[y0:y1, x0:x1]
            nw, nh = max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale))
            small = cv2.resize(region, (nw, nh), interpolation=cv2.INTER_AREA)
            kx, ky = nw / (x1 - x0), nh / (y1 - y0)
            # photo -> small (pixel-centre aligned, as cv2.resize does): q = (p - off + 0.5) k - 0.5
            to_small = np.array([[kx, 0.0, (0.5 - x0) * kx - 0.5], [0.0, ky, (0.5 - y0) * ky - 0.5]])
            matrix = (_as_3x3(matrix) @ np.linalg.inv(_as_3x3(to_small)))[:2]
            rgb = small
    return cv2.warpAffine(
        rgb, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=border, borderValue=(0, 0, 0)
    )


def _border_flag(border: str) -> int:
    try:
        return BORDER_MODES[border]
    except KeyError:
        raise ValueError(f"border must be one of {sorted(BORDER_MODES)}, got {border!r}") from None


def align_face(
    image: ImageInput, face: DetectedFace, size: int = 112, border: str = "constant"
) -> AlignedFace:
    """Warp ``face`` (detected in ``image``) onto the template at ``size`` x ``size`` pixels.

    ``image`` must be the photo the face was detected in (array, PIL image, path or bytes;
    decoded exactly as the detector decodes it). ``border`` fills what lies outside the photo:
    ``"constant"`` (black, default), ``"replicate"`` or ``"reflect"``; see the module docstring.
    """
    return align_faces(image, [face], sizes=(size,), border=border)[size][0]


def align_faces(
    image: ImageInput,
    faces: Sequence[DetectedFace],
    sizes: Iterable[int | CropSpec] = (112,),
    border: str = "constant",
) -> dict[int | CropSpec, list[AlignedFace]]:
    """Align every face at every size: ``{size: [AlignedFace for each face, in order]}``.

    A size is an ``int`` (ArcFace template) or a :class:`CropSpec` (its own template); the
    result is keyed by what was asked for. The photo is decoded once; each crop is warped from
    the original photo at its own size (never resized from another crop).
    """
    flag = _border_flag(border)
    wanted = list(dict.fromkeys(s if isinstance(s, CropSpec) else int(s) for s in sizes))
    specs = {s: s if isinstance(s, CropSpec) else CropSpec(s) for s in wanted}
    for spec in specs.values():
        template_for(spec.size, spec.template)  # validates
    faces = list(faces)
    if not faces:
        return {s: [] for s in wanted}
    rgb = as_rgb_array(image)
    out: dict[int | CropSpec, list[AlignedFace]] = {s: [] for s in wanted}
    for face in faces:
        for key, spec in specs.items():
            matrix = estimate_similarity(face.landmarks, spec.size, spec.template)
            out[key].append(AlignedFace(crop=_warp(rgb, matrix, spec.size, flag), face=face))
    return out


def resize_crop(crop: np.ndarray, size: int) -> np.ndarray:
    """An aligned crop at ``size`` x ``size``: area filter when shrinking, bilinear when enlarging.

    For inputs that already are aligned crops; a crop cut from the photo should be warped at
    its final size instead (see :func:`align_faces`), which keeps more detail.
    """
    crop = np.asarray(crop)
    if crop.shape[:2] == (size, size):
        return crop
    shrinking = crop.shape[0] > size or crop.shape[1] > size
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
