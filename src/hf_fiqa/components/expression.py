"""Eyes open and mouth closed, from dense landmarks (lid and lip distances relative to the face height T).

OFIQ (``EyesOpen.cpp``, ``MouthClosed.cpp``) measures ADNet's 98 landmarks: eyes open = the smaller, over both
eyes, of the largest distance between an upper- and lower-lid point pair, over T (eye midpoint to chin); mouth
closed = the largest inner-lip pair distance over T. Here the same ratios are taken on MediaPipe's face mesh:
five lid pairs per eye (161/163 ... 157/154 and 388/390 ... 384/381) and the three inner-lip pairs around the
mouth centre (81/178, 13/14, 311/402), with the chin at point 152; distances are in the image plane, as in OFIQ.
Differences: MediaPipe's lid contour sits on the lid margin like ADNet's, but the two models are trained on
different annotations, so the same eye can give slightly different ratios (OFIQ's thresholds x0 0.02 and 0.2
are kept unchanged). 5 landmarks say nothing about lids or lips: without dense landmarks both are reasons.
"""

from __future__ import annotations

import numpy as np

from .base import Component, Measured, Sigmoid
from .context import CHIN, EYE_LID_PAIRS_LEFT, EYE_LID_PAIRS_RIGHT, INNER_LIP_PAIRS, FaceBatch

__all__ = ["EyesOpen", "MouthClosed"]


def _max_pair_distance(dense: np.ndarray, pairs: tuple[tuple[int, int], ...]) -> np.ndarray:
    a = dense[:, [p[0] for p in pairs], :2]
    b = dense[:, [p[1] for p in pairs], :2]
    return np.linalg.norm(a - b, axis=-1).max(1)


def _dense_t(batch: FaceBatch) -> np.ndarray:
    """T from the dense landmarks alone (NaN where absent): eye-corner midpoints to point 152."""
    return np.linalg.norm(batch.dense[:, CHIN, :2] - batch.eye_mid, axis=-1)


class EyesOpen(Component):
    """min over eyes of the largest lid-pair distance, over T (x0 0.02, w 0.01). Needs dense landmarks."""

    name = "eyes_open"
    unit = "fraction of eye-to-chin distance"
    sigmoid = Sigmoid(x0=0.02, w=0.01)
    differs_from_ofiq = "MediaPipe lid pairs (5 per eye) instead of ADNet's 3"

    def measure(self, batch: FaceBatch) -> Measured:
        d = batch.dense
        with np.errstate(invalid="ignore", divide="ignore"):
            opening = np.minimum(_max_pair_distance(d, EYE_LID_PAIRS_LEFT), _max_pair_distance(d, EYE_LID_PAIRS_RIGHT))
            native = opening / _dense_t(batch)
        return Measured(native, batch.dense_reasons)


class MouthClosed(Component):
    """Largest inner-lip pair distance over T (h 100, a 1, s -1, x0 0.2, w 0.06). Needs dense landmarks."""

    name = "mouth_closed"
    unit = "fraction of eye-to-chin distance"
    sigmoid = Sigmoid(x0=0.2, w=0.06, a=1.0, s=-1.0)
    differs_from_ofiq = "MediaPipe inner-lip pairs instead of ADNet's"

    def measure(self, batch: FaceBatch) -> Measured:
        with np.errstate(invalid="ignore", divide="ignore"):
            native = _max_pair_distance(batch.dense, INNER_LIP_PAIRS) / _dense_t(batch)
        return Measured(native, batch.dense_reasons)
