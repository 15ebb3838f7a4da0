"""Head pose: yaw, pitch and roll in degrees, and OFIQ's component ``round(100 * max(0, cos(angle))^2)``.

OFIQ fits 3DDFA-V2 (a learned 3D morphable model) and maps each angle with the squared cosine (99 at 5 deg,
88 at 20 deg, 50 at 45 deg). Here the angles come from one of two fits, named in each result's ``note``:

* ``dense`` (MediaPipe face mesh with depth): pitch and roll from a least-squares similarity (Procrustes/Kabsch)
  fit of the 468 observed points to MediaPipe's canonical face (:mod:`hf_fiqa.components.canonical_face`); the
  rotation is split as R = Rz(roll) Ry(yaw) Rx(pitch), so roll is exactly the in-image angle of the eye line.
* ``5-point`` fallback (no dense landmarks): roll is the angle of the line through the eye centres. Pitch has no
  5-point estimate: the nose's height between eyes and mouth varies between people as much as a 15-20 degree
  nod moves it, so pitch is a reason rather than a guess.

Yaw is the largest of up to three cues, because every one of them *under*-states a strongly turned head:

1. (dense only) an orthographic fit of the mesh's 2D points, leaving out the 36 silhouette points (the face
   oval, whose far half is invisible on a turned face and guessed). MediaPipe's predicted depth flattens
   towards the canonical face on profiles, so the 3D fit's yaw stays near 50 deg on faces turned 70-90 deg;
2. the nose offset: how far the nose tip sits beside the eye-mouth midline, relative to the inter-eye distance
   (with the nose protruding d ~ 0.57 IED in front of that midline, offset / IED = d tan(yaw)); it saturates
   as the far eye disappears;
3. beyond ``FORESHORTENING_FROM`` degrees only, the foreshortening of the eye line: the inter-eye distance over
   the eye-to-mouth distance, against the canonical face's 0.905, is cos(yaw). Near frontal it is too noisy to
   use (people's proportions differ by +-10 %, i.e. +-25 deg there); on a profile it is the strongest cue.

The sign is the one of cue 1 or 2 with the larger magnitude. Measured on CFP (2,480 + 2,460 frontal and
991 + 984 profile faces found by YuNet; choices made on the odd-numbered identities, reported on the even ones):
the share of profile faces at |yaw| >= 45 deg was 70.1 % with the 3D fit's yaw, 82.8 % with cue 1, 89.9 % with
cues 1-2, and 92.1 % with all three as implemented here (``FORESHORTENING_FROM`` = 40, the middle of 35-45,
which tied on the odd identities; meshes with presence < 0.5 fall back to the 5 points); frontal faces within
20 deg: 99.9 %. Without dense landmarks (cues 2-3): 80.5 % and 99.9 %.

How good the 5-point values are depends on the detector. Measured with this project's YuNet (OpenCV zoo,
2023mar): its eye points follow only about half of an in-plane rotation (photos of 20 CelebA faces rotated
by 5/10/20/30/45 deg moved the eye line by a median 2.1/4.6/9.9/14.9/20.2 deg; RetinaFace's points moved
9.7 for 10 and 19.2 for 20), so YuNet's 5-point roll is about half the true roll; and it is not
mirror-symmetric (on 200 LFW photos |yaw + yaw of the mirrored photo| has median 3.8 deg, p90 8.7; roll
2.3 and 5.3). Against the dense fit on the same 200 LFW faces (hf_fiqa's conversion of MediaPipe's mesh),
5-point yaw differs by a median 2.8 deg (p90 7.2, slope 1.12, correlation 0.95) and 5-point roll has slope
0.44. For +-5 deg pose checks use dense landmarks.

On those 200 LFW faces the dense fit gives pitch median -5.3 deg (p10 -16.8, p90 8.5), residual 0.38 cm RMS
(canonical units) and a depth scale matching x/y within 3%; without ground-truth poses here, a constant offset
between MediaPipe's predicted meshes and its canonical face cannot be told from how the photos were taken.

Signs (both fits): yaw > 0 when the nose points to the image right (the subject's left); pitch > 0 when it
points up; roll > 0 when the head leans counter-clockwise as seen in the image (the image-right eye higher).
A mirrored photo flips yaw and roll and keeps pitch.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from .base import Component, Measured
from .canonical_face import CANONICAL_FACE
from .context import CANONICAL, FaceBatch

__all__ = [
    "FORESHORTENING_FROM",
    "HeadPosePitch",
    "HeadPoseRoll",
    "HeadPoseYaw",
    "combined_yaw",
    "head_pose",
    "pose_from_dense",
    "pose_from_five",
    "yaw_from_2d_fit",
    "yaw_from_foreshortening",
]

PITCH_WHY = "5 points cannot separate a nod from the person's face proportions"
NOTE_FIVE = "5-point estimate (no dense landmarks)"
#: Degrees from which the eye line's foreshortening counts as a yaw cue (chosen on odd CFP identities).
FORESHORTENING_FROM = 40.0
#: MediaPipe's FACEMESH_FACE_OVAL: the silhouette, guessed where a turned face hides it.
FACE_OVAL = (10, 21, 54, 58, 67, 93, 103, 109, 127, 132, 136, 148, 149, 150, 152, 162, 172, 176, 234, 251, 284,
             288, 297, 323, 332, 338, 356, 361, 365, 377, 378, 379, 389, 397, 400, 454)
_FIT_POINTS = np.setdiff1d(np.arange(CANONICAL_FACE.shape[0]), FACE_OVAL)


def pose_from_five(points: np.ndarray) -> np.ndarray:
    """(M, 5, 2) points (eye centres, nose tip, mouth corners; image-left first) -> (M, 3) yaw, pitch, roll
    in degrees; pitch is NaN."""
    pts = np.asarray(points, dtype=np.float64)
    eye_l, eye_r, nose = pts[:, 0], pts[:, 1], pts[:, 2]
    mouth_mid = pts[:, 3:5].mean(1)
    eye_mid = (eye_l + eye_r) / 2
    v = eye_r - eye_l
    angle = np.arctan2(v[:, 1], v[:, 0])  # image axes (y down)
    c, s = np.cos(angle), np.sin(angle)

    def x_derolled(p: np.ndarray) -> np.ndarray:  # x after rotating the eye line onto the horizontal
        return c * p[:, 0] + s * p[:, 1]

    ied = np.linalg.norm(v, axis=-1)
    mid_x = x_derolled(eye_mid) + CANONICAL["nose_frac"] * (x_derolled(mouth_mid) - x_derolled(eye_mid))
    offset = (x_derolled(nose) - mid_x) / ied
    yaw = np.degrees(np.arctan(offset / CANONICAL["nose_depth_per_ied"]))
    roll = -np.degrees(angle)
    return np.stack([yaw, np.full_like(yaw, np.nan), roll], axis=1)


def pose_from_dense(dense: np.ndarray) -> np.ndarray:
    """(M, 468, 3) face-mesh points in photo pixels (y down, z away from the camera) -> (M, 3) yaw, pitch,
    roll in degrees, by a Procrustes fit to the canonical face (x right, y up, z towards the camera)."""
    obs = np.asarray(dense, dtype=np.float64)[:, : CANONICAL_FACE.shape[0]] * np.array([1.0, -1.0, -1.0])
    obs = obs - obs.mean(1, keepdims=True)
    ref = CANONICAL_FACE - CANONICAL_FACE.mean(0)
    h = np.einsum("ki,mkj->mij", ref, obs)  # sum_k ref_k obs_k^T, (M, 3, 3)
    u, _, vt = np.linalg.svd(h)
    v = np.swapaxes(vt, 1, 2)
    d = np.sign(np.linalg.det(v @ np.swapaxes(u, 1, 2)))
    fix = np.tile(np.eye(3), (len(obs), 1, 1))
    fix[:, 2, 2] = np.where(d == 0, 1.0, d)
    r = v @ fix @ np.swapaxes(u, 1, 2)  # canonical -> camera rotation
    yaw = np.degrees(np.arcsin(np.clip(-r[:, 2, 0], -1.0, 1.0)))
    pitch = -np.degrees(np.arctan2(r[:, 2, 1], r[:, 2, 2]))
    roll = np.degrees(np.arctan2(r[:, 1, 0], r[:, 0, 0]))
    return np.stack([yaw, pitch, roll], axis=1)


def _rotation_yaw(r: np.ndarray) -> np.ndarray:
    return np.degrees(np.arcsin(np.clip(-r[:, 2, 0], -1.0, 1.0)))


def yaw_from_2d_fit(dense: np.ndarray) -> np.ndarray:
    """(M, 468, >=2) face-mesh points in photo pixels -> (M,) yaw in degrees from their image positions alone:
    an affine camera fitted to the canonical face (silhouette left out), its two rows made the nearest scaled
    orthonormal pair, the third row their cross product."""
    xy = np.asarray(dense, dtype=np.float64)[:, _FIT_POINTS, :2] * np.array([1.0, -1.0])
    xy = xy - xy.mean(1, keepdims=True)
    ref = CANONICAL_FACE[_FIT_POINTS] - CANONICAL_FACE[_FIT_POINTS].mean(0)
    affine = np.einsum("ik,mkj->mji", np.linalg.pinv(ref), xy)  # (M, 2, 3): xy ~ ref @ affine^T
    u, _, vt = np.linalg.svd(affine, full_matrices=False)
    rows = u @ vt
    r = np.concatenate([rows, np.cross(rows[:, 0], rows[:, 1])[:, None]], axis=1)
    return _rotation_yaw(r)


def yaw_from_foreshortening(points: np.ndarray) -> np.ndarray:
    """(M, 5, 2) points -> (M,) *unsigned* yaw in degrees: arccos of the inter-eye distance over the eye-to-mouth
    distance, relative to the canonical face's ratio (0 when the ratio is at or above it)."""
    pts = np.asarray(points, dtype=np.float64)
    ied = np.linalg.norm(pts[:, 1] - pts[:, 0], axis=-1)
    eye_mouth = np.linalg.norm(pts[:, 3:5].mean(1) - pts[:, :2].mean(1), axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = ied / eye_mouth / CANONICAL["ied_per_eye_mouth"]
    return np.degrees(np.arccos(np.clip(ratio, 0.0, 1.0)))


def combined_yaw(signed: np.ndarray, foreshortening: np.ndarray) -> np.ndarray:
    """(M, K) signed yaw cues (NaN = cue missing) and (M,) unsigned foreshortening yaw -> (M,) yaw: the cue of
    largest magnitude, raised to the foreshortening's angle where that is at least ``FORESHORTENING_FROM``."""
    signed = np.asarray(signed, dtype=np.float64)
    magnitude = np.where(np.isfinite(signed), np.abs(signed), -1.0)
    pick = np.take_along_axis(signed, magnitude.argmax(1)[:, None], 1)[:, 0]
    sign = np.where(pick < 0, -1.0, 1.0)
    fs = np.asarray(foreshortening, dtype=np.float64)
    strong = np.isfinite(fs) & (fs >= FORESHORTENING_FROM)
    return np.where(strong, sign * np.maximum(np.abs(pick), np.where(strong, fs, 0.0)), pick)


def head_pose(batch: FaceBatch) -> tuple[np.ndarray, list[str | None], list[str | None]]:
    """((N, 3) yaw, pitch, roll in degrees; method per face ``"dense"``/``"5-point"``/``None``; reason when
    ``None``). Computed once per batch."""

    def build():
        n = len(batch)
        angles = np.full((n, 3), np.nan)
        method: list[str | None] = [None] * n
        reasons = list(batch.landmark_reasons)
        five = np.array([r is None for r in reasons], dtype=bool)
        # the nose-offset and foreshortening cues read the detector's points where they are sound (measured on
        # CFP: better than the mesh's own eye corners on profiles), else the dense landmarks' key points
        detector_ok = np.array([r is None for r in batch.points5_reasons], dtype=bool)
        cue_points = np.where(detector_ok[:, None, None], batch.points5, batch.key_points)
        cues = np.full((n, 2), np.nan)
        foreshortening = np.full(n, np.nan)
        if five.any():
            angles[five] = pose_from_five(batch.key_points[five])
            cues[five, 1] = pose_from_five(cue_points[five])[:, 0]
            foreshortening[five] = yaw_from_foreshortening(cue_points[five])
            for i in np.flatnonzero(five):
                method[i] = "5-point"
        dense = batch.has_dense & ~batch.dense_2d_only()
        if dense.any():
            angles[dense] = pose_from_dense(batch.dense[dense])
            cues[dense, 0] = yaw_from_2d_fit(batch.dense[dense])
            for i in np.flatnonzero(dense):
                method[i] = "dense"
        usable = np.isfinite(cues).any(1)
        angles[usable, 0] = combined_yaw(cues[usable], foreshortening[usable])
        return angles, method, reasons

    return batch.cached("pose", build)


class _HeadPoseAngle(Component):
    unit = "degrees"
    axis: ClassVar[int]
    differs_from_ofiq = ("pitch and roll from a Procrustes fit of the MediaPipe mesh to its canonical face, yaw the "
                         "largest of the mesh's 2D fit, the nose offset and (beyond 40 deg) the eye line's "
                         "foreshortening (OFIQ: 3DDFA-V2); without dense landmarks labelled 5-point yaw and roll")

    def measure(self, batch: FaceBatch) -> Measured:
        angles, method, reasons = head_pose(batch)
        out_reasons: list[str | None] = []
        notes: list[str | None] = []
        for i in range(len(batch)):
            if method[i] is None:
                out_reasons.append(reasons[i] or "no landmarks")
                notes.append(None)
            elif method[i] == "5-point" and self.axis == 1:
                dense_reason = batch.dense_reasons[i]
                if dense_reason is None:  # dense landmarks given, but without depth
                    dense_reason = "dense landmarks have no depth (z)"
                out_reasons.append(f"{dense_reason}; pitch needs them ({PITCH_WHY})")
                notes.append(None)
            else:
                out_reasons.append(None)
                if method[i] == "dense":
                    notes.append("dense landmarks: yaw from the 2D fit, nose offset and eye-line foreshortening"
                                 if self.axis == 0 else "Procrustes fit of the dense landmarks")
                elif batch.has_dense[i]:
                    notes.append("5-point formula on the dense landmarks' eyes, nose and mouth (no depth given)")
                else:
                    notes.append(NOTE_FIVE)
        return Measured(angles[:, self.axis], out_reasons, notes)

    def to_component(self, native: np.ndarray) -> np.ndarray:
        """OFIQ's ``HeadPose::CalculateQuality``: 100 * max(0, cos(angle))^2."""
        return 100.0 * np.maximum(0.0, np.cos(np.radians(native))) ** 2


class HeadPoseYaw(_HeadPoseAngle):
    """Yaw (left-right turn), degrees; > 0 when the nose points to the image right."""

    name = "head_pose_yaw"
    axis = 0


class HeadPosePitch(_HeadPoseAngle):
    """Pitch (nod), degrees; > 0 when the nose points up. Needs dense landmarks with depth."""

    name = "head_pose_pitch"
    axis = 1


class HeadPoseRoll(_HeadPoseAngle):
    """Roll (in-plane tilt), degrees; > 0 counter-clockwise in the image (the image-right eye higher)."""

    name = "head_pose_roll"
    axis = 2
