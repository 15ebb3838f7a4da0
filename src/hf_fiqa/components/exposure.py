"""Light on the face: luminance mean and variance, under- and over-exposure, dynamic range, illumination
uniformity, natural colour.

All are statistics of the aligned face's luminance (OFIQ's linear-light Y, 0-255; see
:mod:`hf_fiqa.components.context`) over the face region, or of its two cheek zones. The histogram statistics
are vectorised over the batch: one (N, 256) array of face-region histograms feeds every component here.

Definitions and mappings are OFIQ's (``Luminance.cpp``, ``UnderExposurePrevention.cpp``,
``OverExposurePrevention.cpp``, ``DynamicRange.cpp``, ``IlluminationUniformity.cpp``, ``NaturalColour.cpp``,
``image_utils.cpp``). Differences common to all of them: the face region is a landmark hull (dense landmarks) or
the canonical face placed by 5 points, never BiSeNet face parsing, and OFIQ's occlusion mask (which removes
hands, hair, glasses from the exposure measures) is not applied; pixels outside the photo are left out instead
of counted as black; the aligned image is 308 px instead of 616 px.
"""

from __future__ import annotations

import numpy as np

from .base import Component, Measured, Sigmoid
from .context import FaceBatch

__all__ = [
    "DynamicRange",
    "IlluminationUniformity",
    "LuminanceMean",
    "LuminanceVariance",
    "NaturalColour",
    "OverExposure",
    "UnderExposure",
    "cielab_ab",
]

DARK = (0, 25)  # OFIQ's darkRange, inclusive
BRIGHT = (247, 255)  # OFIQ's lightRange, inclusive


def _sig(x: np.ndarray, x0: float, w: float) -> np.ndarray:
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp((x0 - x) / w))


def histogram_stats(batch: FaceBatch) -> dict[str, np.ndarray]:
    """Vectorised statistics of the face-region luminance histograms, once per batch."""

    def build():
        hist = batch.pixels.hist  # (N, 256), NaN rows where no pixels
        with np.errstate(invalid="ignore", divide="ignore"):
            p = hist / hist.sum(1, keepdims=True)
            levels = np.arange(256) / 255.0
            mean = p @ levels
            var = (p * (levels[None] - mean[:, None]) ** 2).sum(1)
            plogp = np.where(p > 0, p * np.log2(np.where(p > 0, p, 1.0)), 0.0)
            entropy = -plogp.sum(1)
            entropy[np.isnan(p).any(1)] = np.nan
        return {"mean": mean, "var": var, "entropy": entropy,
                "dark": p[:, DARK[0]: DARK[1] + 1].sum(1), "bright": p[:, BRIGHT[0]: BRIGHT[1] + 1].sum(1)}

    return batch.cached("histogram_stats", build)


class LuminanceMean(Component):
    """Mean luminance of the face region, 0-1; OFIQ: 100 * sig(x; 0.2, 0.05) * (1 - sig(x; 0.8, 0.05))."""

    name = "luminance_mean"
    unit = "luminance 0-1"
    differs_from_ofiq = "face region approximated (landmark hull)"

    def measure(self, batch: FaceBatch) -> Measured:
        return Measured(histogram_stats(batch)["mean"], batch.pixels.reasons, batch.pixels.notes)

    def to_component(self, native: np.ndarray) -> np.ndarray:
        return 100.0 * _sig(native, 0.2, 0.05) * (1.0 - _sig(native, 0.8, 0.05))


class LuminanceVariance(Component):
    """Variance of the face region's luminance (0-1 scale); OFIQ: 100 * sin(pi * 60v / (60v + 1))."""

    name = "luminance_variance"
    unit = "luminance variance (0-1 scale)"
    differs_from_ofiq = "face region approximated (landmark hull)"

    def measure(self, batch: FaceBatch) -> Measured:
        return Measured(histogram_stats(batch)["var"], batch.pixels.reasons, batch.pixels.notes)

    def to_component(self, native: np.ndarray) -> np.ndarray:
        return 100.0 * np.sin(np.pi * 60.0 * native / (60.0 * native + 1.0))


class UnderExposure(Component):
    """Fraction of face pixels with luminance 0-25 (h 120, a 0.832, s -1, x0 0.92, w 0.05)."""

    name = "under_exposure_prevention"
    unit = "fraction of face pixels"
    sigmoid = Sigmoid(x0=0.92, w=0.05, h=120.0, a=0.832, s=-1.0)
    differs_from_ofiq = "no occlusion mask; face region approximated"

    def measure(self, batch: FaceBatch) -> Measured:
        return Measured(histogram_stats(batch)["dark"], batch.pixels.reasons, batch.pixels.notes)


class OverExposure(Component):
    """Fraction of face pixels with luminance 247-255; OFIQ: round(1 / (x + 0.01))."""

    name = "over_exposure_prevention"
    unit = "fraction of face pixels"
    differs_from_ofiq = "no occlusion mask; face region approximated"

    def measure(self, batch: FaceBatch) -> Measured:
        return Measured(histogram_stats(batch)["bright"], batch.pixels.reasons, batch.pixels.notes)

    def to_component(self, native: np.ndarray) -> np.ndarray:
        return 1.0 / (native + 0.01)


class DynamicRange(Component):
    """Entropy of the face region's luminance histogram, bits (0-8); OFIQ: 12.5 x."""

    name = "dynamic_range"
    unit = "bits"
    differs_from_ofiq = "face region approximated (landmark hull)"

    def measure(self, batch: FaceBatch) -> Measured:
        return Measured(histogram_stats(batch)["entropy"], batch.pixels.reasons, batch.pixels.notes)

    def to_component(self, native: np.ndarray) -> np.ndarray:
        return 12.5 * native


class IlluminationUniformity(Component):
    """Overlap (sum of bin-wise minima, 0-1) of the luminance histograms of the two cheek zones; 100 x^0.3.

    The zones are OFIQ's: squares of 0.3 IED, half the eye-to-mouth distance below each eye centre, on the nose
    side. OFIQ counts zone pixels outside the face region as black; here they are left out, and a zone mostly
    outside the face region or photo is a reason.
    """

    name = "illumination_uniformity"
    unit = "histogram overlap 0-1"
    differs_from_ofiq = "cheek-zone pixels outside the face region are left out instead of counted as black"

    def measure(self, batch: FaceBatch) -> Measured:
        px = batch.pixels
        native = np.minimum(px.roi_hist[:, 0], px.roi_hist[:, 1]).sum(1)
        return Measured(native, px.roi_reasons, px.notes)

    def to_component(self, native: np.ndarray) -> np.ndarray:
        return 100.0 * np.power(np.maximum(native, 0.0), 0.3)


def cielab_ab(rgb_mean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """OFIQ's ``ConvertBGRToCIELAB`` on mean sRGB values (..., 3) in 0-255: linearise, sRGB -> XYZ (D50),
    relative to the D50 white, CIELAB's f(), and return (a*, b*)."""
    c = np.asarray(rgb_mean, dtype=np.float64) / 255.0
    lin = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    m = np.array([[0.43605, 0.38508, 0.14309], [0.22249, 0.71689, 0.06062], [0.01393, 0.09710, 0.71419]])
    xyz = lin @ m.T / np.array([0.964221, 1.0, 0.825211])
    k, eps = 24289 / 27.0, 216 / 24389.0  # OFIQ's constants (k is CIE's 24389/27 with a typo'd digit)
    f = np.where(xyz <= eps, (k * xyz + 16) / 116, np.cbrt(xyz))
    return 500.0 * (f[..., 0] - f[..., 1]), 200.0 * (f[..., 1] - f[..., 2])


class NaturalColour(Component):
    """Distance of the cheek zones' mean CIELAB (a*, b*) from the skin box [5, 25] x [5, 35]
    (100 when a* or b* is negative); h 200, a 1, s -1, x0 0, w 10.

    OFIQ reports a greyscale photo as native 0 (component 100, "natural"); here it is a reason, because a photo
    without colour says nothing about natural colour.
    """

    name = "natural_colour"
    unit = "CIELAB distance"
    sigmoid = Sigmoid(x0=0.0, w=10.0, h=200.0, a=1.0, s=-1.0)
    differs_from_ofiq = ("greyscale photos are a reason (OFIQ: native 0); zones restricted to the face region; "
                         "mean over the zone pixels inside it")

    def measure(self, batch: FaceBatch) -> Measured:
        px = batch.pixels
        a, b = cielab_ab(px.roi_rgb)
        dist = np.hypot(np.maximum(np.maximum(0.0, 5 - a), np.maximum(0.0, a - 25)),
                        np.maximum(np.maximum(0.0, 5 - b), np.maximum(0.0, b - 35)))
        native = np.where(np.isnan(a) | np.isnan(b), np.nan, np.where((a >= 0) & (b >= 0), dist, 100.0))
        reasons = [r or ("greyscale photo: no colour to assess" if g else None)
                   for r, g in zip(px.roi_reasons, px.grey)]
        return Measured(native, reasons, px.notes)
