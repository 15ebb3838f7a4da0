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
6. Gain toward ideal puts a pAUC on a scale where a random ordering scores 0 % and the best
   possible ordering 100 %::

       gain = (pAUC_random - pAUC) / (pAUC_random - pAUC_oracle)

   * ``pAUC_random = e0 * L`` (:func:`random_area`). With qualities independent of the errors,
     the expected error among the kept comparisons stays ``e0`` at every discard point, whatever
     the tie structure, and the stepwise widths up to ``L`` add up to ``L``; so ``e0 * L`` is the
     exact expectation of the stepwise pAUC, not only its large-M limit.
   * ``pAUC_oracle`` (:func:`oracle_area`) is the stepwise pAUC of the ideal ordering on these
     very comparisons: the ``E`` errors discarded first, one comparison per discard step, so
     the curve points are ``(k/M, max(0, E - k) / (M - k))``. No ordering can do better (at
     every discard count the kept errors are at least ``E - k``, and the oracle's error falls
     monotonically), so ``gain <= 100 %``, with equality for an error-revealing quality without
     ties among the errors. It is slightly above ``ideal_area`` (the continuous triangle, which
     no stepwise ratio curve reaches) and is used instead of it so that 100 % is attainable.
     A quality that ties all errors at one value (``quality = -error``) gets less than 100 %:
     the tie is discarded in one step and the error holds ``e0`` until it is gone (rule 3).
   * Negative gains are worse than random. The gain is NaN when ``pAUC_random == pAUC_oracle``
     (``e0`` is 0 or 1, or ``L`` is 0): every ordering then has the same pAUC.

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
    random_pauc: float = float("nan")  # expected pAUC of a random ordering, e0 * L
    oracle_pauc: float = float("nan")  # stepwise pAUC of the ideal ordering (errors first, no ties)
    gain: float = float("nan")  # (random_pauc - pauc) / (random_pauc - oracle_pauc); 1.0 = 100 %

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
            "random_pauc": self.random_pauc,
            "oracle_pauc": self.oracle_pauc,
            "gain": self.gain,
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


def random_area(e0: float, limit: float) -> float:
    """Expected stepwise pAUC up to ``limit`` of an ordering independent of the errors: ``e0 * limit``."""
    return float(e0) * _rate(limit, "discard limit")


def oracle_area(n_errors: int, n_pairs: int, limit: float) -> float:
    """Stepwise pAUC up to ``limit`` of the ideal ordering of ``n_pairs`` comparisons, ``n_errors`` of them errors.

    The errors are discarded first, one comparison per step: points ``(k/M, max(0, E - k)/(M - k))``
    for ``k = 0..M-1``, then ``(1, 0)``; the same stepwise area as :func:`partial_area`. It is the
    lowest pAUC any ordering of these comparisons can reach, and at least :func:`ideal_area`.
    """
    limit = _rate(limit, "discard limit")
    m, e = int(n_pairs), int(n_errors)
    if not 0 <= e <= m:
        raise ValueError(f"need 0 <= n_errors <= n_pairs, got {e} and {m}")
    k = np.arange(min(e, int(np.ceil(limit * m))), dtype=np.float64)  # steps that start before the limit
    widths = np.minimum((k + 1) / m, limit) - np.minimum(k / m, limit)
    return float(np.sum((e - k) / (m - k) * widths))


def gain_toward_ideal(pauc: float, random_pauc: float, oracle_pauc: float) -> float:
    """``(random - pauc) / (random - oracle)``: 0 = random ordering, 1 = ideal; NaN when random == oracle."""
    denom = float(random_pauc) - float(oracle_pauc)
    if not denom > 1e-12:
        return float("nan")
    return (float(random_pauc) - float(pauc)) / denom


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
    random_pauc = random_area(e0, limit)
    oracle_pauc = oracle_area(int(np.count_nonzero(errors)), int(q.shape[0]), limit)
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
        random_pauc=random_pauc,
        oracle_pauc=oracle_pauc,
        gain=gain_toward_ideal(area, random_pauc, oracle_pauc),
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
