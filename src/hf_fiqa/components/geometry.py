"""Where the face sits in the photo and how large it is: inter-eye distance, head size, crops and margins.

All of these are landmark arithmetic over the whole batch at once (no pixels). Definitions follow OFIQ's
``InterEyeDistance.cpp``, ``HeadSize.cpp`` and ``CropOfTheFaceImage.cpp``:

* IED: distance between the eye centres, divided by cos(yaw) (a turned face shows a shortened IED);
* T: distance from the eye midpoint to the chin; head size = T / photo height, mapped on |T/H - 0.45|;
* leftward crop = x of the image-*right* eye / IED and rightward crop = (W - x of the image-*left* eye) / IED:
  OFIQ measures each border against the eye farther from it (the subject's left eye for the left border, as
  ISO/IEC 29794-5 names eyes from the subject's side), so the value is below 1 only when the face runs into
  that border;
* margin above = eye-midpoint y / T, margin below = (H - eye-midpoint y) / T.

Differences from OFIQ: landmarks are floats (OFIQ rounds them to integer pixels); without dense landmarks the
eye centres are the detector's eye points and the chin is extrapolated from the 5 points (``note`` says so), so
head size and the margins are estimates for faces whose proportions or pitch differ from the average.
"""

from __future__ import annotations

import numpy as np

from .base import Component, Measured, Sigmoid
from .context import FaceBatch
from .pose import head_pose

__all__ = ["HeadSize", "InterEyeDistance", "LeftwardCrop", "MarginAbove", "MarginBelow", "RightwardCrop"]


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, NaN instead of a warning where den is 0 (those faces already carry a reason)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _reasons(batch: FaceBatch, need_photo: bool) -> list[str | None]:
    out = list(batch.landmark_reasons)
    if need_photo:
        out = [r or p for r, (_, p) in zip(out, batch.photos)]
    return out


class InterEyeDistance(Component):
    """Inter-eye distance in photo pixels, corrected for yaw (OFIQ: IED / cos(yaw); x0 70, w 20)."""

    name = "inter_eye_distance"
    unit = "pixels"
    sigmoid = Sigmoid(x0=70.0, w=20.0)
    differs_from_ofiq = "yaw from the dense-landmark fit or the 5-point estimate instead of 3DDFA-V2"

    def measure(self, batch: FaceBatch) -> Measured:
        angles, method, pose_reasons = head_pose(batch)
        cos_yaw = np.cos(np.radians(angles[:, 0]))
        reasons = _reasons(batch, need_photo=False)
        with np.errstate(divide="ignore", invalid="ignore"):
            native = np.where(np.abs(cos_yaw) < 1e-6, np.nan, batch.ied / cos_yaw)
        reasons = [r or (pr if m is None else None) for r, m, pr in zip(reasons, method, pose_reasons)]
        notes = ["yaw correction from the 5-point yaw estimate" if m == "5-point" else None for m in method]
        return Measured(native, reasons, notes)


class HeadSize(Component):
    """T / photo height (eye-midpoint-to-chin distance over image height); OFIQ maps |raw - 0.45|."""

    name = "head_size"
    unit = "fraction of photo height"
    sigmoid = Sigmoid(x0=0.0, w=0.05, h=200.0, a=1.0, s=-1.0)
    differs_from_ofiq = "without dense landmarks the chin is extrapolated from the 5 points"

    def measure(self, batch: FaceBatch) -> Measured:
        return Measured(_ratio(batch.t_metric, batch.size_hw[:, 0]), _reasons(batch, True), batch.chin_notes())

    def to_component(self, native: np.ndarray) -> np.ndarray:
        return self.sigmoid(np.abs(native - 0.45))


class LeftwardCrop(Component):
    """Image-right eye centre's x over IED: room between the left border and the face (x0 0.9, w 0.1)."""

    name = "leftward_crop"
    unit = "inter-eye distances"
    sigmoid = Sigmoid(x0=0.9, w=0.1)

    def measure(self, batch: FaceBatch) -> Measured:
        return Measured(_ratio(batch.eyes[:, 1, 0], batch.ied), _reasons(batch, True))


class RightwardCrop(Component):
    """(photo width - image-left eye centre's x) over IED (x0 0.9, w 0.1)."""

    name = "rightward_crop"
    unit = "inter-eye distances"
    sigmoid = Sigmoid(x0=0.9, w=0.1)

    def measure(self, batch: FaceBatch) -> Measured:
        return Measured(_ratio(batch.size_hw[:, 1] - batch.eyes[:, 0, 0], batch.ied), _reasons(batch, True))


class MarginAbove(Component):
    """Eye midpoint's y over T: room above the eyes, in eye-to-chin distances (x0 1.4, w 0.1)."""

    name = "margin_above"
    unit = "eye-to-chin distances"
    sigmoid = Sigmoid(x0=1.4, w=0.1)
    differs_from_ofiq = "without dense landmarks T uses an extrapolated chin"

    def measure(self, batch: FaceBatch) -> Measured:
        return Measured(_ratio(batch.eye_mid[:, 1], batch.t_metric), _reasons(batch, True), batch.chin_notes())


class MarginBelow(Component):
    """(photo height - eye midpoint's y) over T: room below the eyes (x0 1.8, w 0.1)."""

    name = "margin_below"
    unit = "eye-to-chin distances"
    sigmoid = Sigmoid(x0=1.8, w=0.1)
    differs_from_ofiq = "without dense landmarks T uses an extrapolated chin"

    def measure(self, batch: FaceBatch) -> Measured:
        return Measured(_ratio(batch.size_hw[:, 0] - batch.eye_mid[:, 1], batch.t_metric), _reasons(batch, True),
                        batch.chin_notes())
