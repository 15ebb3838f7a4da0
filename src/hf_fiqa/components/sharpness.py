"""Sharpness: how crisp the edges inside the face are, independent of contrast and brightness.

OFIQ (``Sharpness.cpp``) computes 26 statistics (mean and standard deviation of |Laplacian| at kernel sizes
1-9 after a 3x3 Gaussian, of |grey - box blur| at 3/5/7, of |Sobel xy| at 1-9) inside the face hull of the
*unaligned* photo, feeds them to a random forest trained on OFIQ's own data, and maps ``trees - forest output``
with h 1, a -14, s 115, x0 -20, w 15. The forest is a trained model, not a definition, and is not reproduced.

Here the native value is one of those ingredients made scale-free: on the aligned face (inter-eye distance
56.5 px, about the scale face recognisers see) in grey levels (OpenCV's BGR2GRAY weights) after a 3x3 Gaussian,

    sharpness = mean |Laplacian (3x3)| / mean |Sobel gradient|     over the face region shrunk by 2 px.

A blurred edge of width s has a Laplacian about 1/s of its gradient, so the ratio falls with blur whatever the
contrast or exposure (darkening a face by 70% moves it by 2%, a Gaussian blur of 1 px by -23%). The mapping
is hf_fiqa's own, not OFIQ's: a sigmoid with x0 0.18, w 0.02, chosen on 120 LFW faces so that the median
LFW face gives about 95, the same faces blurred by a 1 px Gaussian about 55 and by 2 px under 10. Known limits:
sensor noise and strong JPEG blocking *raise* the ratio (they add sharp structure), and a face upsampled from
very few pixels reads as blurred, which is what it is at recognition scale.
"""

from __future__ import annotations

import cv2
import numpy as np

from .base import Component, Measured, Sigmoid
from .context import FaceBatch

__all__ = ["Sharpness", "sharpness_native"]

_ERODE = np.ones((5, 5), np.uint8)


def sharpness_native(crop: np.ndarray, region: np.ndarray) -> float:
    """mean |Laplacian| / mean |gradient| of the grey aligned face ``crop`` over ``region`` (eroded by 2 px)."""
    grey = cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_RGB2GRAY).astype(np.float32)
    inner = cv2.erode(region.astype(np.uint8), _ERODE).astype(bool)
    if inner.sum() < 16:
        return float("nan")
    smooth = cv2.GaussianBlur(grey, (3, 3), 0)
    lap = np.abs(cv2.Laplacian(smooth, cv2.CV_32F, ksize=3))[inner].mean()
    grad = cv2.magnitude(cv2.Sobel(smooth, cv2.CV_32F, 1, 0), cv2.Sobel(smooth, cv2.CV_32F, 0, 1))[inner].mean()
    return float(lap / grad) if grad > 1e-6 else float("nan")


class Sharpness(Component):
    """Laplacian-to-gradient ratio of the aligned face (see the module docstring); hf_fiqa's own mapping."""

    name = "sharpness"
    unit = "Laplacian / gradient ratio"
    sigmoid = Sigmoid(x0=0.18, w=0.02)
    differs_from_ofiq = ("a single scale-free Laplacian/Sobel ratio with a mapping fitted on LFW, instead of "
                         "OFIQ's random forest over 26 Laplacian/Sobel/mean-difference statistics")

    def measure(self, batch: FaceBatch) -> Measured:
        px = batch.pixels

        def build():
            return np.array([sharpness_native(c, r) if c is not None else np.nan
                             for c, r in zip(px.crops, px.regions)], dtype=np.float64)

        return Measured(batch.cached("sharpness", build), px.reasons, px.notes)
