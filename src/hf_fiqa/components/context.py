"""Everything the components share, computed once per batch of faces: landmark geometry and pixel statistics.

Many components read the same intermediate quantities (eye centres, the eye-to-chin distance T, the face region
of the aligned face and its luminance histogram). :class:`FaceBatch` computes each of them lazily, once, for all
faces of a batch: landmark arithmetic is numpy over (N, ...) arrays (the pose fit in pose.py, too); the pixel work
(one warp, one luminance image and a few histograms per face) runs per face, and a failure there becomes a reason
for that face only.

Geometry follows OFIQ (``OFIQlib/modules/measures``, v1.0.3):

* eye centres: the midpoints of the eye corners (MediaPipe 33/133 and 362/263) when dense landmarks are given,
  else the detector's eye points (YuNet's eye points are near the pupils, close to the corner midpoints);
* chin: MediaPipe point 152, else *estimated* from the 5 points as eye midpoint + k (mouth midpoint - eye
  midpoint) with k taken from MediaPipe's canonical face (about 1.73); components using it say so in ``note``;
* aligned face: a similarity fit of (eye centres, nose tip, mouth corners) onto OFIQ's template
  (251,272), (364,272), (308,336), (262,402), (355,402) of a 616 x 616 image, here at half scale (308 x 308):
  the histogram measures are fractions of face pixels and barely change with scale, and the warp is 4x cheaper;
* luminance: OFIQ's ``GetLuminanceImageFromBGR``: sRGB values linearised, Y = 0.2126 R + 0.7152 G + 0.0722 B,
  rounded to 0-255 (REFERENCE.md's short formula omits the linearisation; OFIQ's code applies it);
* face region: OFIQ takes the convex hull of ADNet's 98 aligned landmarks (jaw line up to the eyebrows) and
  BiSeNet parsing for some measures. Here: the hull of the 468 aligned face-mesh points cut at the top of the
  eyebrows (MediaPipe's mesh reaches the forehead, ADNet's hull stops at the brows); without dense landmarks,
  the same hull of MediaPipe's *canonical* face placed by the 5 points (right for frontal faces, it includes some
  background beside a turned face). Pixels outside the photo are excluded (OFIQ counts them as black); a face
  region less than 60% inside the photo is a reason, not a number.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from ..faces.alignment import align_faces, estimate_similarity, transform_points
from ..faces.types import CropSpec, DetectedFace
from .canonical_face import CANONICAL_FACE
from .inputs import DENSE_POINTS, DENSE_PRESENCE_MIN, FaceInput

__all__ = [
    "ALIGN_SIZE",
    "FaceBatch",
    "MIN_FACE_INSIDE",
    "MIN_IED_PIXELS",
    "NEEDS_DENSE",
    "OFIQ_TEMPLATE_616",
    "luminance",
]

# --- MediaPipe face-mesh indices (468-point topology); "left"/"right" as seen in the image -----------------
EYE_CORNERS_LEFT = (33, 133)  # the subject's right eye, on the image left
EYE_CORNERS_RIGHT = (362, 263)
NOSE_TIP = 1
MOUTH_CORNERS = (61, 291)
CHIN = 152
INNER_LIP_CENTRE = (13, 14)
BROW_TOP = (70, 63, 105, 66, 107, 336, 296, 334, 293, 300)
#: Upper/lower lid pairs across each eye, outer to inner (OFIQ: the 3 ADNet pairs per eye).
EYE_LID_PAIRS_LEFT = ((161, 163), (160, 144), (159, 145), (158, 153), (157, 154))
EYE_LID_PAIRS_RIGHT = ((388, 390), (387, 373), (386, 374), (385, 380), (384, 381))
#: Inner-lip pairs around the mouth centre (OFIQ: ADNet 89-95, 90-94, 91-93).
INNER_LIP_PAIRS = ((81, 178), (13, 14), (311, 402))

OFIQ_TEMPLATE_616 = np.array([[251, 272], [364, 272], [308, 336], [262, 402], [355, 402]], dtype=np.float64)
ALIGN_SIZE = 308  # OFIQ's 616 x 616 aligned image at half scale
MIN_IED_PIXELS = 8.0  # below this (in the photo) there are too few face pixels for pixel statistics
MIN_FACE_INSIDE = 0.6  # fraction of the face region that must lie inside the photo
MIN_ROI_INSIDE = 0.5  # fraction of each cheek zone (illumination uniformity, colour) inside the face region
NEEDS_DENSE = "needs dense landmarks (MediaPipe face mesh); none given"
_MARGIN = 4  # pixels kept around the face region's bounding box
_SHRINK_BELOW = 0.75  # warp scales below this go through hf_fiqa.faces.align_faces, which pre-filters


def _canonical_constants() -> dict[str, float]:
    c = CANONICAL_FACE
    eye_l = c[list(EYE_CORNERS_LEFT)].mean(0)
    eye_r = c[list(EYE_CORNERS_RIGHT)].mean(0)
    eye_mid = (eye_l + eye_r) / 2
    mouth = c[list(MOUTH_CORNERS)].mean(0)
    chin = c[CHIN]
    nose = c[NOSE_TIP]
    nose_frac = (eye_mid[1] - nose[1]) / (eye_mid[1] - mouth[1])  # nose height between eyes and mouth
    mid_depth = eye_mid[2] + nose_frac * (mouth[2] - eye_mid[2])  # the face midline's depth at nose height
    return {
        "chin_k": float((eye_mid[1] - chin[1]) / (eye_mid[1] - mouth[1])),
        "nose_frac": float(nose_frac),
        "nose_depth_per_ied": float((nose[2] - mid_depth) / np.linalg.norm(eye_r - eye_l)),
        # inter-eye distance over the eye-to-mouth distance of a frontal face (image plane): yaw shrinks the first
        "ied_per_eye_mouth": float(np.linalg.norm((eye_r - eye_l)[:2]) / np.linalg.norm((mouth - eye_mid)[:2])),
    }


CANONICAL = _canonical_constants()

# sRGB decoding as in OFIQ's ColorConvert, times the Rec. 709 luminance weights, in 0-255 units.
_LINEAR = np.where(np.arange(256) / 255.0 > 0.04045, ((np.arange(256) / 255.0 + 0.055) / 1.055) ** 2.4,
                   np.arange(256) / 255.0 / 12.92)
_LUT_Y = np.ascontiguousarray(
    (255.0 * _LINEAR[:, None] * np.array([0.2126, 0.7152, 0.0722])).astype(np.float32).reshape(256, 1, 3))


def luminance(rgb: np.ndarray) -> np.ndarray:
    """OFIQ's luminance image: (H, W, 3) uint8 sRGB -> (H, W) uint8 of linear-light Y scaled to 0-255."""
    parts = cv2.LUT(np.ascontiguousarray(rgb), _LUT_Y)  # per-channel weighted linear values, float32
    return np.floor(parts[..., 0] + parts[..., 1] + parts[..., 2] + 0.5).astype(np.uint8)


def _fill_hull(points: np.ndarray, size: int, top: float | None) -> np.ndarray:
    """Binary mask of the convex hull of ``points`` (float pixels), rows above ``top`` removed."""
    mask = np.zeros((size, size), np.uint8)
    hull = cv2.convexHull(np.round(points * 16).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 1, lineType=cv2.LINE_8, shift=4)
    if top is not None:
        mask[: max(0, int(np.ceil(top)))] = 0
    return mask.astype(bool)


@functools.lru_cache(maxsize=4)
def canonical_region(size: int = ALIGN_SIZE) -> np.ndarray:
    """The face region used without dense landmarks: MediaPipe's canonical face seen frontally, placed by its
    5 points on the template, hull cut at the eyebrows. Read-only (size, size) bool."""
    xy = CANONICAL_FACE[:, :2] * np.array([1.0, -1.0])  # image axes: y down
    five = np.stack([xy[list(EYE_CORNERS_LEFT)].mean(0), xy[list(EYE_CORNERS_RIGHT)].mean(0), xy[NOSE_TIP],
                     xy[MOUTH_CORNERS[0]], xy[MOUTH_CORNERS[1]]])
    m = estimate_similarity(five, size, OFIQ_TEMPLATE_616 / 616.0)
    pts = transform_points(m, xy)
    mask = _fill_hull(pts, size, pts[list(BROW_TOP), 1].min())
    mask.setflags(write=False)
    return mask


def _as_rgb(photo: np.ndarray) -> tuple[np.ndarray | None, str | None]:
    """The photo as (H, W, 3) uint8, or a reason. Grey (H, W) / (H, W, 1) and RGBA are accepted."""
    if not isinstance(photo, np.ndarray) or photo.dtype != np.uint8:
        return None, f"photo must be a uint8 RGB array, got {getattr(photo, 'dtype', type(photo).__name__)}"
    if photo.ndim == 2:
        photo = photo[..., None]
    if photo.ndim != 3 or photo.shape[2] not in (1, 3, 4) or min(photo.shape[:2]) < 1:
        return None, f"photo must be (H, W, 3), got shape {tuple(photo.shape)}"
    if photo.shape[2] == 1:
        photo = np.repeat(photo, 3, axis=2)
    elif photo.shape[2] == 4:
        photo = photo[..., :3]
    return np.ascontiguousarray(photo), None


@dataclass
class PixelStats:
    """Per-face pixel statistics of the aligned face (N faces; NaN/None where ``reasons[i]`` is set)."""

    hist: np.ndarray  # (N, 256) counts of luminance over the face region
    roi_hist: np.ndarray  # (N, 2, 256) normalised luminance histograms of the two cheek zones
    roi_rgb: np.ndarray  # (N, 3) mean sRGB (0-255) of the cheek zones
    crops: list[np.ndarray | None]  # aligned RGB face, cut to the face region's box (+4 px), for sharpness
    regions: list[np.ndarray | None]  # bool face region inside the photo, same window as ``crops``
    grey: np.ndarray  # (N,) bool: R == G == B over the face region
    reasons: list[str | None]  # why pixel statistics are missing
    roi_reasons: list[str | None]  # why the cheek zones are missing
    notes: list[str | None]


class FaceBatch:
    """N faces and the quantities components share, each computed on first use."""

    def __init__(self, faces: Sequence[FaceInput]):
        self.faces = list(faces)
        self._cache: dict[str, object] = {}

    def __len__(self) -> int:
        return len(self.faces)

    def take(self, i: int) -> FaceBatch:
        """A batch of face ``i`` alone (used to isolate a failure)."""
        return FaceBatch([self.faces[i]])

    def cached(self, key: str, fn):
        """``fn()`` computed once per batch under ``key``; component modules keep their own shared results here
        (the pose fit, sharpness) so that context.py needs no import of them."""
        if key not in self._cache:
            self._cache[key] = fn()
        return self._cache[key]

    # ------------------------------------------------------------------------------------------------ photo
    @property
    def photos(self) -> list[tuple[np.ndarray | None, str | None]]:
        """``(rgb or None, reason)`` per face; photos shared by several faces are converted once."""

        def build():
            seen: dict[int, tuple] = {}
            out = []
            for f in self.faces:
                key = id(f.photo)
                if key not in seen:
                    seen[key] = _as_rgb(f.photo)
                out.append(seen[key])
            return out

        return self.cached("photos", build)

    @property
    def size_hw(self) -> np.ndarray:
        """(N, 2) photo height and width (NaN when the photo is unusable)."""
        return self.cached("size_hw", lambda: np.array(
            [(rgb.shape[0], rgb.shape[1]) if rgb is not None else (np.nan, np.nan) for rgb, _ in self.photos],
            dtype=np.float64).reshape(-1, 2))

    # ------------------------------------------------------------------------------------------- landmarks
    @property
    def points5(self) -> np.ndarray:
        """(N, 5, 2) detector landmarks, NaN where malformed."""

        def build():
            out = np.full((len(self), 5, 2), np.nan)
            for i, f in enumerate(self.faces):
                if np.shape(f.landmarks) == (5, 2):
                    out[i] = f.landmarks
            return out

        return self.cached("points5", build)

    @property
    def points5_reasons(self) -> list[str | None]:
        def build():
            out: list[str | None] = []
            for f, pts in zip(self.faces, self.points5):
                if np.shape(f.landmarks) != (5, 2):
                    out.append(f"5 landmarks must be (5, 2), got shape {np.shape(f.landmarks)}")
                elif not np.isfinite(pts).all():
                    out.append("5 landmarks contain NaN or inf")
                elif np.hypot(*(pts[1] - pts[0])) < 1.0:
                    out.append("eye landmarks coincide (inter-eye distance < 1 px)")
                else:
                    out.append(None)
            return out

        return self.cached("points5_reasons", build)

    @property
    def dense(self) -> np.ndarray:
        """(N, 468, 3) dense landmarks, NaN where absent or invalid (see :attr:`dense_reasons`)."""

        def build():
            out = np.full((len(self), DENSE_POINTS, 3), np.nan)
            for i, f in enumerate(self.faces):
                d = f.dense_landmarks
                if d is not None and d.ndim == 2 and d.shape[0] >= DENSE_POINTS and d.shape[1] in (2, 3):
                    out[i, :, : d.shape[1]] = d[:DENSE_POINTS]
                    if d.shape[1] == 2:
                        out[i, :, 2] = 0.0
            return out

        return self.cached("dense", build)

    @property
    def dense_reasons(self) -> list[str | None]:
        def build():
            out: list[str | None] = []
            for f, d in zip(self.faces, self.dense):
                raw = f.dense_landmarks
                if raw is None:
                    out.append(NEEDS_DENSE)
                elif raw.ndim != 2 or raw.shape[0] < DENSE_POINTS or raw.shape[1] not in (2, 3):
                    out.append(f"dense landmarks must be ({DENSE_POINTS}, 3) face-mesh points, got {raw.shape}")
                elif not np.isfinite(d).all():
                    out.append("dense landmarks contain NaN or inf")
                elif f.dense_presence is not None and not f.dense_presence >= DENSE_PRESENCE_MIN:
                    out.append(f"the face mesh doubts a face is there (presence {f.dense_presence:.2f} < "
                               f"{DENSE_PRESENCE_MIN}): its landmarks are not used")
                elif np.hypot(*(d[list(EYE_CORNERS_RIGHT), :2].mean(0) - d[list(EYE_CORNERS_LEFT), :2].mean(0))) < 1:
                    out.append("dense eye landmarks coincide (inter-eye distance < 1 px)")
                else:
                    out.append(None)
            return out

        return self.cached("dense_reasons", build)

    @property
    def has_dense(self) -> np.ndarray:
        return np.array([r is None for r in self.dense_reasons], dtype=bool)

    def dense_2d_only(self) -> np.ndarray:
        """(N,) bool: dense landmarks given without depth (pose from them is impossible)."""
        return np.array([f.dense_landmarks is not None and f.dense_landmarks.ndim == 2
                         and f.dense_landmarks.shape[-1] == 2 for f in self.faces], dtype=bool)

    # -------------------------------------------------------------------------------------------- geometry
    @property
    def landmark_reasons(self) -> list[str | None]:
        """Why face i has no usable eye/mouth geometry: dense landmarks make it usable even when the 5
        points are broken; otherwise the 5 points' reason."""
        return self.cached("landmark_reasons", lambda: [
            None if d is None else p for d, p in zip(self.dense_reasons, self.points5_reasons)])

    @property
    def key_points(self) -> np.ndarray:
        """(N, 5, 2): eye centres (image-left, image-right), nose tip, mouth corners: from dense landmarks
        where valid, else the detector's points. These also drive the alignment."""

        def build():
            pts = self.points5.copy()
            d = self.dense
            hd = self.has_dense
            if hd.any():
                pts[hd, 0] = d[hd][:, list(EYE_CORNERS_LEFT), :2].mean(1)
                pts[hd, 1] = d[hd][:, list(EYE_CORNERS_RIGHT), :2].mean(1)
                pts[hd, 2] = d[hd][:, NOSE_TIP, :2]
                pts[hd, 3] = d[hd][:, MOUTH_CORNERS[0], :2]
                pts[hd, 4] = d[hd][:, MOUTH_CORNERS[1], :2]
            return pts

        return self.cached("key_points", build)

    @property
    def eyes(self) -> np.ndarray:
        """(N, 2, 2) eye centres: [image-left eye, image-right eye]."""
        return self.key_points[:, :2]

    @property
    def eye_mid(self) -> np.ndarray:
        return self.eyes.mean(1)

    @property
    def ied(self) -> np.ndarray:
        """(N,) inter-eye distance in photo pixels (not corrected for yaw)."""
        return self.cached("ied", lambda: np.hypot(*(self.eyes[:, 1] - self.eyes[:, 0]).T))

    @property
    def mouth_centre(self) -> np.ndarray:
        """(N, 2): the inner-lip centre (dense) or the mouth-corner midpoint (5 points)."""

        def build():
            out = self.key_points[:, 3:5].mean(1)
            hd = self.has_dense
            if hd.any():
                out[hd] = self.dense[hd][:, list(INNER_LIP_CENTRE), :2].mean(1)
            return out

        return self.cached("mouth_centre", build)

    @property
    def chin(self) -> np.ndarray:
        """(N, 2) chin point: MediaPipe 152, else extrapolated from the 5 points (:attr:`chin_estimated`)."""

        def build():
            mouth_mid = self.key_points[:, 3:5].mean(1)
            out = self.eye_mid + CANONICAL["chin_k"] * (mouth_mid - self.eye_mid)
            hd = self.has_dense
            if hd.any():
                out[hd] = self.dense[hd][:, CHIN, :2]
            return out

        return self.cached("chin", build)

    @property
    def chin_estimated(self) -> np.ndarray:
        return ~self.has_dense

    @property
    def t_metric(self) -> np.ndarray:
        """(N,) T: distance from the eye midpoint to the chin, photo pixels (OFIQ's ``tmetric``)."""
        return self.cached("t", lambda: np.hypot(*(self.chin - self.eye_mid).T))

    def chin_notes(self) -> list[str | None]:
        return ["5-point estimate: chin extrapolated from eyes and mouth with average face proportions"
                if est else None for est in self.chin_estimated]

    # ---------------------------------------------------------------------------------------------- pixels
    @property
    def pixels(self) -> PixelStats:
        return self.cached("pixels", self._pixel_stats)

    def _pixel_stats(self) -> PixelStats:
        n = len(self)
        stats = PixelStats(hist=np.full((n, 256), np.nan), roi_hist=np.full((n, 2, 256), np.nan),
                           roi_rgb=np.full((n, 3), np.nan), crops=[None] * n, regions=[None] * n,
                           grey=np.zeros(n, dtype=bool), reasons=[None] * n, roi_reasons=[None] * n,
                           notes=[None] * n)
        for i in range(n):
            try:
                self._pixel_stats_one(i, stats)
            except Exception as exc:  # noqa: BLE001 - one broken face must not cost the batch
                stats.reasons[i] = f"pixel statistics failed: {type(exc).__name__}: {exc}"
            if stats.reasons[i] is not None:
                stats.roi_reasons[i] = stats.reasons[i]
        return stats

    def _pixel_stats_one(self, i: int, stats: PixelStats) -> None:
        rgb, reason = self.photos[i]
        reason = reason or self.landmark_reasons[i]
        if reason is None and self.ied[i] < MIN_IED_PIXELS:
            reason = (f"face too small for pixel statistics (inter-eye distance {self.ied[i]:.1f} px "
                      f"< {MIN_IED_PIXELS:g})")
        if reason is not None:
            stats.reasons[i] = reason
            return
        size = ALIGN_SIZE
        template = OFIQ_TEMPLATE_616 / 616.0
        src = self.key_points[i]
        matrix = estimate_similarity(src, size, template)
        if self.has_dense[i]:
            pts = transform_points(matrix, self.dense[i, :, :2])
            face_mask = _fill_hull(pts, size, pts[list(BROW_TOP), 1].min())
        else:
            face_mask = canonical_region(size)
            stats.notes[i] = "face region from the 5 points and an average face shape (no dense landmarks)"
        total = int(np.count_nonzero(face_mask))
        if total == 0:
            stats.reasons[i] = "empty face region"
            return
        # Work inside the face region's bounding box (plus a margin for the sharpness filters): about a third
        # of the aligned image.
        x, y, bw, bh = cv2.boundingRect(face_mask.view(np.uint8))
        x0, y0 = max(0, x - _MARGIN), max(0, y - _MARGIN)
        x1, y1 = min(size, x + bw + _MARGIN), min(size, y + bh + _MARGIN)
        if np.sqrt(abs(np.linalg.det(matrix[:, :2]))) >= _SHRINK_BELOW:  # warp only the window
            window = matrix - [[0, 0, x0], [0, 0, y0]]
            crop = cv2.warpAffine(rgb, window, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
        else:  # a large face shrunk: hf_fiqa.faces pre-filters it against aliasing (which fakes sharpness)
            spec = CropSpec(size, tuple(map(tuple, template)))
            fake = DetectedFace(box=np.zeros(4, np.float32), landmarks=src.astype(np.float32), score=1.0)
            crop = np.ascontiguousarray(align_faces(rgb, [fake], sizes=[spec])[spec][0].crop[y0:y1, x0:x1])
        h, w = rgb.shape[:2]
        corners = transform_points(matrix, np.array([[-0.5, -0.5], [w - 0.5, -0.5], [w - 0.5, h - 0.5],
                                                     [-0.5, h - 0.5]])) - [x0, y0]
        inside = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillConvexPoly(inside, np.round(corners * 16).astype(np.int32), 1, lineType=cv2.LINE_8, shift=4)
        region = face_mask[y0:y1, x0:x1] & inside.view(bool)
        frac = np.count_nonzero(region) / total
        if frac < MIN_FACE_INSIDE:
            stats.reasons[i] = f"face region only {100 * frac:.0f}% inside the photo (< {100 * MIN_FACE_INSIDE:.0f}%)"
            return

        lum = luminance(crop)
        region_u8 = region.view(np.uint8)
        hist = cv2.calcHist([lum], [0], region_u8, [256], [0, 256]).ravel().astype(np.float64)
        levels = np.flatnonzero(hist)
        if len(levels) <= 1:
            stats.reasons[i] = (f"face region is uniform (every pixel has luminance {int(levels[0])}): "
                                "no image content to assess")
            return
        stats.hist[i] = hist
        chroma = cv2.absdiff(crop[..., 0], crop[..., 1]) | cv2.absdiff(crop[..., 1], crop[..., 2])
        stats.grey[i] = cv2.countNonZero(chroma & region_u8) == 0
        stats.crops[i], stats.regions[i] = crop, region

        # Cheek zones (OFIQ's CalculateRegionOfInterest): squares of 0.3 IED below each eye, half the
        # eye-to-mouth distance down, on the nose side of each eye centre.
        eyes = transform_points(matrix, self.eyes[i])
        mouth = transform_points(matrix, self.mouth_centre[i][None])[0]
        ied_a = float(np.hypot(*(eyes[1] - eyes[0])))
        em = float(np.hypot(*(eyes.mean(0) - mouth)))
        zone = int(ied_a * 0.3)
        if zone < 2:
            stats.roi_reasons[i] = "cheek zones too small"
            return
        (xl, yl), (xr, yr) = np.round(eyes - [x0, y0]).astype(int)
        hists, rgbs = [], []
        for bx, by in ((xl, yl + int(em / 2)), (xr - zone, yr + int(em / 2))):
            ys, xs = slice(max(0, by), max(0, by + zone)), slice(max(0, bx), max(0, bx + zone))
            sel = region[ys, xs]
            if np.count_nonzero(sel) < MIN_ROI_INSIDE * zone * zone:
                stats.roi_reasons[i] = "a cheek zone below the eyes lies mostly outside the face region or photo"
                return
            h_roi = np.bincount(lum[ys, xs][sel], minlength=256).astype(np.float64)
            hists.append(h_roi / h_roi.sum())
            rgbs.append(crop[ys, xs][sel].astype(np.float64))
        stats.roi_hist[i] = np.stack(hists)
        stats.roi_rgb[i] = np.concatenate(rgbs).mean(0)
