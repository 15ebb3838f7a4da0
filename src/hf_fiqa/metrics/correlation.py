"""Agreement between predicted image quality and human opinion scores (MOS).

IQA papers report rank correlations (SRCC, KRCC), which ignore the scale of the prediction, and
linear correlation / error (PLCC, RMSE) *after* mapping predictions onto the MOS scale with the
VQEG four-parameter logistic, because a model's raw output scale is arbitrary. We report both the
raw and the fitted PLCC/RMSE so numbers can be compared with either convention.

Input policy (kept strict so a silent bug cannot produce a plausible-looking number):

* different lengths, NaN/inf values or fewer than 3 points raise :class:`ValueError` naming the
  offending input;
* a constant input makes every correlation undefined: the correlations and fitted values come back
  as NaN with a :class:`RuntimeWarning` (the raw RMSE is still well defined and is returned).
"""

from __future__ import annotations

import warnings
from typing import Any, Mapping

import numpy as np

MIN_POINTS = 3


def logistic4(x: np.ndarray, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    """VQEG 4-parameter logistic ``(b1 - b2) / (1 + exp(-(x - b3) / |b4|)) + b2``.

    Written with :func:`scipy.special.expit` so large ``|x - b3| / |b4|`` cannot overflow.
    """
    from scipy.special import expit

    scale = max(abs(b4), np.finfo(np.float64).tiny)
    return b2 + (b1 - b2) * expit((np.asarray(x, dtype=np.float64) - b3) / scale)


def _as_vector(values: Any, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        arr = np.squeeze(arr)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {np.shape(values)}")
    bad = ~np.isfinite(arr)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name} holds {int(bad.sum())} NaN/inf value(s) (first at position {first})")
    return arr


def validate_pair(pred: Any, mos: Any, names: tuple[str, str] = ("pred", "mos")) -> tuple[np.ndarray, np.ndarray]:
    """Return both inputs as finite float64 vectors of equal length >= 3, or raise ValueError."""
    x = _as_vector(pred, names[0])
    y = _as_vector(mos, names[1])
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"{names[0]} has {x.shape[0]} values but {names[1]} has {y.shape[0]}")
    if x.shape[0] < MIN_POINTS:
        raise ValueError(f"need at least {MIN_POINTS} points to correlate, got {x.shape[0]}")
    return x, y


def fit_logistic(pred: np.ndarray, mos: np.ndarray) -> tuple[np.ndarray, str, np.ndarray | None]:
    """Map ``pred`` onto the MOS scale; return ``(fitted, method, params)``.

    ``method`` is ``"logistic4"`` when the VQEG logistic converged and fits at least as well as a
    straight line, else ``"linear"`` (least-squares line), the fallback used when curve fitting
    fails or lands in a poor local optimum. ``params`` are ``[b1, b2, b3, b4]`` or the line's
    ``[slope, intercept]``.
    """
    from scipy.optimize import OptimizeWarning, curve_fit
    from scipy.stats import spearmanr

    x = np.asarray(pred, dtype=np.float64)
    y = np.asarray(mos, dtype=np.float64)
    line = np.polyfit(x, y, 1)
    linear = np.polyval(line, x)
    sse_linear = float(np.sum((y - linear) ** 2))

    # Start from a curve spanning the MOS range, centred on the predictions, with the direction
    # of the rank correlation so decreasing relationships converge too.
    increasing = spearmanr(x, y).statistic >= 0
    hi, lo = float(np.max(y)), float(np.min(y))
    p0 = [hi, lo, float(np.median(x)), float(np.std(x)) or 1.0]
    if not increasing:
        p0[0], p0[1] = lo, hi
    try:
        with warnings.catch_warnings():
            # "Covariance could not be estimated" (e.g. 4 points, 4 parameters) is no fit failure;
            # the fitted curve is judged below against the straight line instead.
            warnings.simplefilter("ignore", OptimizeWarning)
            params, _ = curve_fit(logistic4, x, y, p0=p0, maxfev=20000)
        fitted = logistic4(x, *params)
        if np.all(np.isfinite(fitted)) and np.ptp(fitted) > 0:
            sse = float(np.sum((y - fitted) ** 2))
            if sse <= sse_linear * (1.0 + 1e-9) + 1e-12:
                return fitted, "logistic4", np.asarray(params, dtype=np.float64)
    except (RuntimeError, ValueError, FloatingPointError):
        pass
    return linear, "linear", np.asarray(line, dtype=np.float64)


def correlation_table(pred: Any, mos: Any) -> dict[str, Any]:
    """SRCC, KRCC, raw and logistic-fitted PLCC and RMSE of predictions against MOS.

    Returns a JSON-ready dict: ``n``, ``srcc``, ``krcc``, ``plcc_raw``, ``plcc_fitted``,
    ``rmse_raw`` (predictions taken at face value, meaningful only when they share the MOS scale),
    ``rmse_fitted``, ``fit`` (``"logistic4"``, ``"linear"`` or ``None`` for constant input) and
    ``fit_params``. ``srcc``/``krcc``/``plcc_raw`` keep the sign of the relation; ``plcc_fitted``
    correlates the *mapped* predictions with MOS, so it is positive when the fitted curve captures
    a decreasing relation too.
    """
    from scipy.stats import kendalltau, pearsonr, spearmanr

    x, y = validate_pair(pred, mos)
    result: dict[str, Any] = {
        "n": int(x.shape[0]),
        "rmse_raw": float(np.sqrt(np.mean((x - y) ** 2))),
    }
    constant = [name for name, arr in (("pred", x), ("mos", y)) if np.ptp(arr) == 0]
    if constant:
        warnings.warn(
            f"{' and '.join(constant)} is constant: correlations are undefined and reported as NaN",
            RuntimeWarning,
            stacklevel=2,
        )
        nan = float("nan")
        result.update(srcc=nan, krcc=nan, plcc_raw=nan, plcc_fitted=nan, rmse_fitted=nan, fit=None, fit_params=None)
        return result

    fitted, method, params = fit_logistic(x, y)
    result.update(
        srcc=float(spearmanr(x, y).statistic),
        krcc=float(kendalltau(x, y).statistic),
        plcc_raw=float(pearsonr(x, y).statistic),
        plcc_fitted=float(pearsonr(fitted, y).statistic) if np.ptp(fitted) > 0 else float("nan"),
        rmse_fitted=float(np.sqrt(np.mean((fitted - y) ** 2))),
        fit=method,
        fit_params=[float(p) for p in params] if params is not None else None,
    )
    return result


def correlation_report(pred: Any, mos: Any, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """:func:`correlation_table` for a report: the ``RuntimeWarning`` messages it raised (constant input) listed
    under ``warnings`` instead of printed, and ``extra`` (e.g. join counts) merged in."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        table = correlation_table(pred, mos)
    table = {**table, **(extra or {})}
    if caught:
        table["warnings"] = [str(w.message) for w in caught]
    return table
