"""Head pose: yaw, pitch and roll in degrees, and OFIQ's component ``round(100 * max(0, cos(angle))^2)``.

OFIQ fits 3DDFA-V2 (a learned 3D morphable model) and maps each angle with the squared cosine (99 at 5 deg,
88 at 20 deg, 50 at 45 deg). Here the angles come from one of two fits, named in each result's ``note``:

* ``dense`` (MediaPipe face mesh with depth): a least-squares similarity (Procrustes/Kabsch) fit of the 468
  observed points to MediaPipe's canonical face (:mod:`hf_fiqa.components.canonical_face`); the rotation is
  split as R = Rz(roll) Ry(yaw) Rx(pitch), so roll is exactly the in-image angle of the eye line.
* ``5-point`` fallback (no dense landmarks): roll is the angle of the line through the eye centres; yaw comes
  from how far the nose tip sits beside the eye-mouth midline, relative to the inter-eye distance: with the nose
  protruding d (in IED units, ~0.57 on the canonical face) in front of that midline, offset / IED = d tan(yaw).
  Individual nose length and detector noise make it an estimate (unreliable beyond ~60 deg). Pitch has no
  5-point estimate: the nose's height between eyes and mouth varies between people as much as a 15-20 degree
  nod moves it, so pitch is a reason rather than a guess.

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

__all__ = ["HeadPosePitch", "HeadPoseRoll", "HeadPoseYaw", "head_pose", "pose_from_dense", "pose_from_five"]

PITCH_WHY = "5 points cannot separate a nod from the person's face proportions"
NOTE_FIVE = "5-point estimate (no dense landmarks)"


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


def head_pose(batch: FaceBatch) -> tuple[np.ndarray, list[str | None], list[str | None]]:
    """((N, 3) yaw, pitch, roll in degrees; method per face ``"dense"``/``"5-point"``/``None``; reason when
    ``None``). Computed once per batch."""

    def build():
        n = len(batch)
        angles = np.full((n, 3), np.nan)
        method: list[str | None] = [None] * n
        reasons = list(batch.landmark_reasons)
        five = np.array([r is None for r in reasons], dtype=bool)
        if five.any():
            angles[five] = pose_from_five(batch.key_points[five])
            for i in np.flatnonzero(five):
                method[i] = "5-point"
        dense = batch.has_dense & ~batch.dense_2d_only()
        if dense.any():
            angles[dense] = pose_from_dense(batch.dense[dense])
            for i in np.flatnonzero(dense):
                method[i] = "dense"
        return angles, method, reasons

    return batch.cached("pose", build)


class _HeadPoseAngle(Component):
    unit = "degrees"
    axis: ClassVar[int]
    differs_from_ofiq = ("angles from a Procrustes fit of the MediaPipe mesh to its canonical face (OFIQ: "
                         "3DDFA-V2), or a labelled 5-point estimate of yaw and roll without dense landmarks")

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
                    notes.append("Procrustes fit of the dense landmarks")
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
