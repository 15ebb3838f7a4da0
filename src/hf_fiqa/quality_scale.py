"""The 0-100 quality scale and its bands: one definition for the package, the Hub pipelines and the Space.

A quality model's raw ``score`` is in training-label units. Users read a 0-100 ``quality`` instead: the model's
logistic calibration when its config has one (``quality_calibration``), else the score min-max scaled over a known
range; and a band (``poor`` / ``acceptable`` / ``good`` by default) from thresholds on that scale.

This module imports nothing from hf-fiqa and nothing but numpy, because the packaging step ships it beside the
weights for Hub remote code (``pipeline(..., trust_remote_code=True)`` without hf-fiqa installed). The config
validators are copied into the remote-code configs (``# Copied from hf_fiqa.quality_scale...`` markers, checked by
``tests/test_copies.py``).
"""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

DEFAULT_QUALITY_BANDS = {"labels": ["poor", "acceptable", "good"], "thresholds": [40.0, 70.0], "temperature": 4.0}


def check_label_range(value: Any, owner: str) -> Optional[list[float]]:
    """``None`` or ``[low, high]`` floats with ``low < high``; anything else raises ``ValueError``."""
    if value is None:
        return None
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{owner}.label_range: must be None or [low, high], got {value!r}") from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"{owner}.label_range: needs finite low < high, got {value!r}")
    return [low, high]


def check_quality_calibration(value: Any, owner: str) -> Optional[dict]:
    """``None`` or ``{"intercept": a, "slope": b, ...}`` with finite a and nonzero finite b."""
    if value is None:
        return None
    if not isinstance(value, dict) or "intercept" not in value or "slope" not in value:
        raise ValueError(f"{owner}.quality_calibration: must be None or a dict with 'intercept' and 'slope', "
                         f"got {value!r}")
    try:
        intercept, slope = float(value["intercept"]), float(value["slope"])
    except (TypeError, ValueError):
        raise ValueError(f"{owner}.quality_calibration: 'intercept' and 'slope' must be numbers") from None
    if not (math.isfinite(intercept) and math.isfinite(slope) and slope != 0):
        raise ValueError(f"{owner}.quality_calibration: needs a finite intercept and a finite nonzero slope, "
                         f"got {intercept}, {slope}")
    return {**value, "intercept": intercept, "slope": slope}


def check_quality_bands(value: Any, owner: str) -> dict:
    """``quality_bands``: labels worst to best, one increasing 0-100 threshold between neighbours, a temperature
    (quality points, > 0) and optionally ``score_range`` ([low, high] of the raw score when there is neither a
    calibration nor a ``label_range``). ``None`` gives the defaults (poor < 40 <= acceptable < 70 <= good)."""
    if value is None:
        return {k: list(v) if isinstance(v, list) else v for k, v in DEFAULT_QUALITY_BANDS.items()}
    if not isinstance(value, dict) or "labels" not in value or "thresholds" not in value:
        raise ValueError(f"{owner}.quality_bands: needs a dict with 'labels' and 'thresholds', got {value!r}")
    labels = [str(v) for v in value["labels"]]
    try:
        thresholds = [float(v) for v in value["thresholds"]]
        temperature = float(value.get("temperature", DEFAULT_QUALITY_BANDS["temperature"]))
    except (TypeError, ValueError):
        raise ValueError(f"{owner}.quality_bands: thresholds and temperature must be numbers") from None
    if len(labels) < 2 or len(set(labels)) != len(labels) or len(thresholds) != len(labels) - 1:
        raise ValueError(f"{owner}.quality_bands: needs 2+ distinct labels and one threshold between neighbours")
    if any(b <= a for a, b in zip(thresholds, thresholds[1:])) or not all(0 <= t <= 100 for t in thresholds):
        raise ValueError(f"{owner}.quality_bands: thresholds must increase within [0, 100], got {thresholds}")
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"{owner}.quality_bands: temperature must be positive, got {temperature}")
    out = {**value, "labels": labels, "thresholds": thresholds, "temperature": temperature}
    if value.get("score_range") is not None:
        out["score_range"] = check_label_range(value["score_range"], owner)
    return out


def calibrated_quality(score: np.ndarray, calibration: dict) -> np.ndarray:
    """``100 / (1 + exp(intercept + slope * score))``: the logistic calibration of ``quality_calibration``
    (the numpy twin of the quality models' own ``calibrated_quality``, for runtimes without torch: ONNX)."""
    score = np.asarray(score, dtype=np.float64)
    logit = float(calibration["intercept"]) + float(calibration["slope"]) * score
    return 100.0 / (1.0 + np.exp(np.clip(logit, -700.0, 700.0)))


def quality_0_100(score: np.ndarray, config: Any) -> np.ndarray:
    """The model's score on the 0-100 scale the bands use: the calibrated ``quality`` when the config has a
    ``quality_calibration`` (:func:`calibrated_quality`), else ``score`` min-max scaled over
    ``quality_bands["score_range"]``, else ``label_range``, else [0, 1] ([1, num_bins] for MUSIQ's distribution
    head), clipped to [0, 100]."""
    score = np.asarray(score, dtype=np.float64)
    calibration = getattr(config, "quality_calibration", None)
    if calibration:
        return calibrated_quality(score, calibration)
    bands = getattr(config, "quality_bands", None) or {}
    default = (1.0, float(config.num_bins)) if getattr(config, "head", None) == "distribution" else (0.0, 1.0)
    low, high = bands.get("score_range") or getattr(config, "label_range", None) or default
    return np.clip(100.0 * (score - low) / (high - low), 0.0, 100.0)


def band_scores(quality: float, bands: dict | None = None) -> list[dict[str, float]]:
    """``[{label, score}]`` best first for one 0-100 quality.

    Ordinal logistic membership: P(quality band >= k) = sigmoid((quality - threshold_k) / temperature), so the
    scores sum to 1 and the top label is the band holding ``quality`` (up to ~1 point around a threshold).
    """
    bands = bands or DEFAULT_QUALITY_BANDS
    labels, thresholds = list(bands["labels"]), [float(t) for t in bands["thresholds"]]
    temperature = float(bands.get("temperature", DEFAULT_QUALITY_BANDS["temperature"]))
    above = [1.0] + [1.0 / (1.0 + np.exp(-(quality - t) / temperature)) for t in thresholds] + [0.0]
    scores = [max(0.0, above[i] - above[i + 1]) for i in range(len(labels))]
    total = sum(scores) or 1.0
    out = [{"label": label, "score": float(s / total)} for label, s in zip(labels, scores)]
    return sorted(out, key=lambda item: -item["score"])


def band_of(quality: float, bands: dict | None = None) -> str:
    """The band holding ``quality`` (hard thresholds: ``quality >= threshold`` moves up a band)."""
    bands = bands or DEFAULT_QUALITY_BANDS
    index = int(np.searchsorted(np.asarray(bands["thresholds"], dtype=np.float64), quality, side="right"))
    return bands["labels"][index]


__all__ = ["DEFAULT_QUALITY_BANDS", "band_of", "band_scores", "calibrated_quality", "check_label_range",
           "check_quality_bands", "check_quality_calibration", "quality_0_100"]
