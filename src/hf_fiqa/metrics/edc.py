"""Error-versus-Discard Characteristic (EDC) and its partial area (pAUC), ISO/IEC 29794-1:2024.

An EDC asks: if the comparisons whose samples have the lowest quality are discarded first, how
fast does the recognition error among the remaining comparisons fall? The rules that make the
numbers comparable between quality methods (and with the literature) are:

1. A comparison's quality is the *lower* of its two samples' qualities.
2. The comparison-score threshold is fixed ONCE, before anything is discarded, either from a
   target false-match rate on impostor scores or from a starting false-non-match rate ``e0`` on
   genuine scores. (Re-deriving the threshold after every discard step, as some FIQA scripts
   do, is the older ERC definition and gives incomparable numbers.)
3. Comparisons are discarded in ascending quality, and only at quality-value boundaries: all
   comparisons sharing a quality value are discarded together, so ties cannot be broken by
   input order in a method's favour.
4. ``error(k) = errors among kept / kept``; the curve ends with the point ``(1.0, 0.0)``.
5. pAUC up to a discard limit ``L`` is the *stepwise* area (each error value holds until the
   next discard point); optionally minus the area ``e0^2/2 - max(0, e0 - L)^2/2`` under the
   line ``max(0, e0 - x)``, the ideal in which each discarded comparison removes one error.
   (Because the error is a ratio over the *kept* comparisons, the best achievable curve
   ``(e0 - x) / (1 - x)`` lies slightly above that line, so even a perfect ordering has a
   small positive ``pauc_minus_ideal``.)

Scores are similarities: a comparison is a match when ``score >= threshold``. Everything is
vectorised (one sort plus cumulative sums), so millions of comparisons take about a second.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

DEFAULT_DISCARD_LIMIT = 0.2
# Guards floor(rate * n) against binary round-off, e.g. 0.29 * 100 = 28.999999999999996.
_COUNT_EPS = 1e-9


def format_rate(rate: float | None) -> str:
    """Compact, lossless scientific notation for small rates: 1e-03, 2.5e-04."""
    if rate is None:
        return "n/a"
    return np.format_float_scientific(float(rate), trim="-", exp_digits=2)


@dataclass(frozen=True)
class Threshold:
    """A comparison-score threshold and where it came from, fixed before discarding.

    ``source`` is ``"fmr"`` (chosen on impostor scores), ``"fnmr"`` (chosen on genuine scores)
    or ``"given"``. ``target`` is the requested rate; ``fmr``/``fnmr`` the rates achieved at
    ``value`` on the scores it was chosen from (``None`` where those scores were not given).
    """

    value: float
    source: Literal["fmr", "fnmr", "given"]
    target: float | None = None
    fmr: float | None = None
    fnmr: float | None = None

    @property
    def label(self) -> str:
        """Short text for legends and file names, e.g. ``FMR=1e-03`` or ``FNMR=0.1``."""
        if self.source == "fmr":
            return f"FMR={format_rate(self.target)}"
        if self.source == "fnmr":
            return f"FNMR={self.target:g}"
        return f"t={self.value:.4g}"


@dataclass(frozen=True)
class EDCResult:
    """One EDC curve and its summary numbers.

    ``discard_fractions`` and ``errors`` are the curve's points, starting at ``(0, e0)`` and
    ending at ``(1, 0)``; ``kind`` is ``"fnm"`` (genuine pairs, error = non-match) or ``"fm"``
    (impostor pairs, error = match).
    """

    discard_fractions: np.ndarray
    errors: np.ndarray
    threshold: float
    threshold_source: str
    e0: float
    fmr: float | None
    pauc: float
    pauc_minus_ideal: float
    ideal_pauc: float
    discard_limit: float
    n_pairs: int
    kind: Literal["fnm", "fm"] = "fnm"
    threshold_target: float | None = field(default=None)

    def summary(self) -> dict[str, Any]:
        """The scalar fields as plain Python values (for JSON reports)."""
        return {
            "kind": self.kind,
            "threshold": self.threshold,
            "threshold_source": self.threshold_source,
            "threshold_target": self.threshold_target,
            "e0": self.e0,
            "fmr": self.fmr,
            "discard_limit": self.discard_limit,
            "pauc": self.pauc,
            "ideal_pauc": self.ideal_pauc,
            "pauc_minus_ideal": self.pauc_minus_ideal,
            "n_pairs": self.n_pairs,
        }


def _scores(values: Any, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    bad = ~np.isfinite(arr)
    if bad.any():
        raise ValueError(f"{name} holds {int(bad.sum())} NaN/inf value(s) (first at {int(np.flatnonzero(bad)[0])})")
    return arr


def _rate(value: float, name: str) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {value}")
    return value


def pair_quality(sample_qualities: Any, pairs: Any) -> np.ndarray:
    """Quality of each comparison: the lower quality of its two samples.

    ``pairs`` is an ``(M, 2)`` integer array of indices into ``sample_qualities``.
    """
    q = _scores(sample_qualities, "sample qualities")
    idx = np.asarray(pairs)
    if idx.ndim != 2 or idx.shape[1] != 2:
        raise ValueError(f"pairs must have shape (M, 2), got {idx.shape}")
    if not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"pairs must hold integer indices, got dtype {idx.dtype}")
    if idx.size and (idx.min() < 0 or idx.max() >= q.shape[0]):
        raise ValueError(f"pairs index samples outside 0..{q.shape[0] - 1}")
    return np.minimum(q[idx[:, 0]], q[idx[:, 1]])


def fmr_at(impostor_scores: Any, threshold: float) -> float:
    """Fraction of impostor comparisons accepted as matches (``score >= threshold``)."""
    s = _scores(impostor_scores, "impostor scores")
    return float(np.count_nonzero(s >= threshold)) / s.shape[0]


def fnmr_at(genuine_scores: Any, threshold: float) -> float:
    """Fraction of genuine comparisons rejected (``score < threshold``)."""
    s = _scores(genuine_scores, "genuine scores")
    return float(np.count_nonzero(s < threshold)) / s.shape[0]


def threshold_for_fmr(impostor_scores: Any, target_fmr: float) -> Threshold:
    """The lowest threshold whose false-match rate on ``impostor_scores`` is at most ``target_fmr``.

    With ``n`` impostor scores at most ``k = floor(target * n)`` may be accepted. The threshold is
    placed just above (``numpy.nextafter``) the ``(k+1)``-th highest score, so exactly the
    scores strictly above that value match. When that value is tied with higher scores, the
    whole tie is rejected together and the achieved FMR falls below the target rather than
    above it; the achieved rate is reported in ``Threshold.fmr``.
    """
    s = _scores(impostor_scores, "impostor scores")
    target = _rate(target_fmr, "target FMR")
    n = s.shape[0]
    k = min(int(np.floor(target * n + _COUNT_EPS)), n)
    if k >= n:
        value = float(np.min(s))
    else:
        pos = n - 1 - k  # ascending position of the (k+1)-th highest score
        boundary = np.partition(s, pos)[pos]
        value = float(np.nextafter(boundary, np.inf))
    return Threshold(value=value, source="fmr", target=target, fmr=float(np.count_nonzero(s >= value)) / n)


def threshold_for_fnmr(genuine_scores: Any, start_fnmr: float) -> Threshold:
    """The highest threshold whose false-non-match rate on ``genuine_scores`` is at most ``start_fnmr``.

    At most ``j = floor(e0 * n)`` genuine scores may fall below the threshold, so it is set to the
    ``(j+1)``-th lowest score; genuine scores tied with it are kept as matches, which can make the
    achieved starting FNMR (reported in ``Threshold.fnmr``) lower than requested.
    """
    s = _scores(genuine_scores, "genuine scores")
    target = _rate(start_fnmr, "starting FNMR")
    n = s.shape[0]
    j = min(int(np.floor(target * n + _COUNT_EPS)), n)
    if j >= n:
        value = float(np.nextafter(np.max(s), np.inf))
    else:
        value = float(np.partition(s, j)[j])
    return Threshold(value=value, source="fnmr", target=target, fnmr=float(np.count_nonzero(s < value)) / n)


def edc_curve(errors: Any, qualities: Any) -> tuple[np.ndarray, np.ndarray]:
    """EDC points from per-comparison error flags and comparison qualities.

    Returns ``(discard_fractions, error_rates)``: one point per distinct quality value (discarding
    every comparison below it) plus the final ``(1.0, 0.0)``.
    """
    err = np.asarray(errors).reshape(-1).astype(bool)
    q = _scores(qualities, "comparison qualities")
    if err.shape[0] != q.shape[0]:
        raise ValueError(f"{err.shape[0]} error flags but {q.shape[0]} comparison qualities")
    m = q.shape[0]
    order = np.argsort(q, kind="stable")
    q_sorted = q[order]
    discarded_errors = np.concatenate(([0], np.cumsum(err[order], dtype=np.int64)))
    starts = np.concatenate(([0], np.flatnonzero(q_sorted[1:] != q_sorted[:-1]) + 1))
    kept_errors = discarded_errors[m] - discarded_errors[starts]
    rates = kept_errors / (m - starts)
    return np.append(starts / m, 1.0), np.append(rates, 0.0)


def partial_area(discard_fractions: np.ndarray, errors: np.ndarray, limit: float) -> float:
    """Stepwise area under an EDC from 0 to ``limit``: each error holds until the next point."""
    limit = _rate(limit, "discard limit")
    x = np.minimum(np.asarray(discard_fractions, dtype=np.float64), limit)
    y = np.asarray(errors, dtype=np.float64)
    return float(np.sum(y[:-1] * np.diff(x)))


def ideal_area(e0: float, limit: float) -> float:
    """Area up to ``limit`` under ``max(0, e0 - x)``: ``e0^2/2 - max(0, e0 - limit)^2/2``."""
    return e0 * e0 / 2.0 - max(0.0, e0 - limit) ** 2 / 2.0


def _resolve_qualities(qualities: Any, pairs: Any | None, n_scores: int) -> np.ndarray:
    q = pair_quality(qualities, pairs) if pairs is not None else _scores(qualities, "comparison qualities")
    if q.shape[0] != n_scores:
        raise ValueError(f"{n_scores} comparison scores but {q.shape[0]} comparison qualities")
    return q


def _finish(
    errors: np.ndarray,
    q: np.ndarray,
    thr: Threshold,
    fmr: float | None,
    discard_limit: float,
    kind: Literal["fnm", "fm"],
) -> EDCResult:
    limit = _rate(discard_limit, "discard limit")
    x, y = edc_curve(errors, q)
    e0 = float(y[0])
    area = partial_area(x, y, limit)
    ideal = ideal_area(e0, limit)
    return EDCResult(
        discard_fractions=x,
        errors=y,
        threshold=thr.value,
        threshold_source=thr.source,
        threshold_target=thr.target,
        e0=e0,
        fmr=fmr,
        pauc=area,
        pauc_minus_ideal=area - ideal,
        ideal_pauc=ideal,
        discard_limit=limit,
        n_pairs=int(q.shape[0]),
        kind=kind,
    )


def _one_threshold(threshold: float | Threshold | None, **choices: Any) -> None:
    given = [name for name, value in {"threshold": threshold, **choices}.items() if value is not None]
    if len(given) != 1:
        names = ", ".join(["threshold", *choices])
        raise ValueError(f"give exactly one of {names}; got {given or 'none'}")


def fnm_edc(
    genuine_scores: Any,
    qualities: Any,
    *,
    pairs: Any | None = None,
    threshold: float | Threshold | None = None,
    impostor_scores: Any | None = None,
    target_fmr: float | None = None,
    start_fnmr: float | None = None,
    discard_limit: float = DEFAULT_DISCARD_LIMIT,
) -> EDCResult:
    """False-non-match EDC over genuine comparisons.

    ``qualities`` are per-comparison qualities, or per-sample qualities when ``pairs`` (``(M, 2)``
    sample indices of each genuine comparison) is given, in which case the comparison quality is
    the minimum of the two. Give exactly one of ``threshold`` (a value or a :class:`Threshold`
    shared across methods), ``target_fmr`` (needs ``impostor_scores``) or ``start_fnmr``.
    ``EDCResult.fmr`` is the FMR at the threshold when impostor scores are known.
    """
    s = _scores(genuine_scores, "genuine scores")
    q = _resolve_qualities(qualities, pairs, s.shape[0])
    _one_threshold(threshold, target_fmr=target_fmr, start_fnmr=start_fnmr)
    imp = _scores(impostor_scores, "impostor scores") if impostor_scores is not None else None
    if target_fmr is not None:
        if imp is None:
            raise ValueError("target_fmr needs impostor_scores to choose the threshold on")
        thr = threshold_for_fmr(imp, target_fmr)
    elif start_fnmr is not None:
        thr = threshold_for_fnmr(s, start_fnmr)
    elif isinstance(threshold, Threshold):
        thr = threshold
    else:
        thr = Threshold(value=float(threshold), source="given")
    if imp is not None:
        fmr = float(np.count_nonzero(imp >= thr.value)) / imp.shape[0]
    else:
        fmr = thr.fmr
    return _finish(s < thr.value, q, thr, fmr, discard_limit, "fnm")


def fm_edc(
    impostor_scores: Any,
    qualities: Any,
    *,
    pairs: Any | None = None,
    threshold: float | Threshold | None = None,
    target_fmr: float | None = None,
    discard_limit: float = DEFAULT_DISCARD_LIMIT,
) -> EDCResult:
    """False-match EDC over impostor comparisons: error = ``score >= threshold``.

    Shows whether discarding low-quality samples also removes false matches. ``e0`` is the
    starting FMR. Threshold from ``threshold`` or ``target_fmr`` (chosen on these same scores).
    """
    s = _scores(impostor_scores, "impostor scores")
    q = _resolve_qualities(qualities, pairs, s.shape[0])
    _one_threshold(threshold, target_fmr=target_fmr)
    if target_fmr is not None:
        thr = threshold_for_fmr(s, target_fmr)
    elif isinstance(threshold, Threshold):
        thr = threshold
    else:
        thr = Threshold(value=float(threshold), source="given")
    errors = s >= thr.value
    return _finish(errors, q, thr, float(errors.mean()), discard_limit, "fm")
