"""A quality number people can act on: 0-100, fixed on calibration data, with a stated meaning.

A quality network regresses pseudo-labels whose scale depends on the dataset they were normalised
over; "73" means nothing by itself. Here the raw score is mapped, monotonically, to

    quality = 100 x (1 - expected fraction of the face's genuine comparisons that fail)

at one fixed decision threshold of the recognizer (from a target false-match rate on impostor
comparisons). The map is an isotonic (monotone non-increasing) fit of each calibration face's
observed failure rate against its raw score, stored as a few knots of a piecewise-linear function
in the model's config (``quality_calibration``), so the model alone and every pipeline give the
same number. :func:`discard_table` turns a set of faces into the "discard below Q" table users
ask for (what share of faces goes, and what it does to the false non-match rate).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def threshold_at_fmr(embeddings: np.ndarray, identities: Sequence[Any], fmr: float, max_pairs: int = 4_000_000,
                     seed: int = 0) -> float:
    """Cosine threshold whose false-match rate on (sampled) impostor pairs is ``fmr``."""
    x = _unit(embeddings)
    ids = np.asarray(identities).astype(str)
    rng = np.random.default_rng(seed)
    n = len(x)
    count = min(max_pairs, n * (n - 1) // 2)
    a = rng.integers(0, n, size=count * 2)
    b = rng.integers(0, n, size=count * 2)
    keep = ids[a] != ids[b]
    a, b = a[keep][:count], b[keep][:count]
    sims = np.einsum("ij,ij->i", x[a], x[b])
    return float(np.quantile(sims, 1.0 - fmr, method="higher"))


def face_failure_rates(probe_embeddings: np.ndarray, probe_identities: Sequence[Any], probe_sources: Sequence[Any],
                       reference_embeddings: np.ndarray, reference_identities: Sequence[Any],
                       reference_sources: Sequence[Any], threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """``(failure rate, number of genuine comparisons)`` per probe.

    A probe's genuine comparisons are the reference photos of its identity that do not share its
    source; a comparison fails when its cosine similarity is below ``threshold``.
    """
    p, r = _unit(probe_embeddings), _unit(reference_embeddings)
    p_ids, r_ids = np.asarray(probe_identities).astype(str), np.asarray(reference_identities).astype(str)
    p_src, r_src = np.asarray(probe_sources).astype(str), np.asarray(reference_sources).astype(str)
    rates = np.full(len(p), np.nan)
    counts = np.zeros(len(p), dtype=np.int64)
    for lo in range(0, len(p), 2048):
        hi = min(len(p), lo + 2048)
        sims = p[lo:hi] @ r.T
        genuine = (p_ids[lo:hi, None] == r_ids[None, :]) & (p_src[lo:hi, None] != r_src[None, :])
        counts[lo:hi] = genuine.sum(axis=1)
        fails = ((sims < threshold) & genuine).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            rates[lo:hi] = np.where(counts[lo:hi] > 0, fails / counts[lo:hi], np.nan)
    return rates, counts


def fit_quality_calibration(scores: np.ndarray, failure_rates: np.ndarray, weights: np.ndarray | None = None,
                            num_knots: int = 25, meaning: str = "") -> dict[str, Any]:
    """Knots of the monotone map raw score -> 0-100 quality (see the module docstring).

    ``weights`` (e.g. each face's number of genuine comparisons) weight the isotonic fit.
    Knots sit at quantiles of the calibration scores; beyond the end knots the quality is held.
    """
    from scipy.optimize import isotonic_regression

    scores = np.asarray(scores, dtype=np.float64)
    rates = np.asarray(failure_rates, dtype=np.float64)
    w = np.ones_like(scores) if weights is None else np.asarray(weights, dtype=np.float64)
    ok = np.isfinite(scores) & np.isfinite(rates) & (w > 0)
    if ok.sum() < 10:
        raise ValueError(f"calibration needs at least 10 faces with a score and genuine comparisons, got {int(ok.sum())}")
    order = np.argsort(scores[ok], kind="stable")
    s, y, w = scores[ok][order], rates[ok][order], w[ok][order]
    fitted = isotonic_regression(y, weights=w, increasing=False).x  # failure falls as the score rises
    knots = np.unique(np.quantile(s, np.linspace(0.0, 1.0, num_knots)))
    if len(knots) < 2:
        raise ValueError("calibration scores are all equal; the model does not rank faces")
    expected_failure = np.interp(knots, s, fitted)
    quality = np.clip(100.0 * (1.0 - expected_failure), 0.0, 100.0)
    quality = np.maximum.accumulate(quality)  # interpolation of a monotone fit stays monotone; guard rounding
    return {"score": [float(v) for v in knots], "quality": [float(round(v, 4)) for v in quality],
            "meaning": meaning, "num_faces": int(ok.sum())}


def discard_table(qualities: np.ndarray, embeddings: np.ndarray, identities: Sequence[Any], threshold: float,
                  cutoffs: Sequence[float]) -> list[dict[str, float]]:
    """For each cutoff Q: the share of faces below it and the FNMR of genuine pairs among the faces kept.

    Pairs are all genuine pairs of the faces (both kept); FNMR is the share with similarity below
    ``threshold`` (the same fixed threshold before and after discarding, as in EDC).
    """
    x = _unit(embeddings)
    q = np.asarray(qualities, dtype=np.float64)
    ids = np.asarray(identities).astype(str)
    order = np.argsort(ids, kind="stable")
    firsts, seconds = [], []
    start = 0
    sorted_ids = ids[order]
    while start < len(order):
        stop = start
        while stop < len(order) and sorted_ids[stop] == sorted_ids[start]:
            stop += 1
        members = order[start:stop]
        i, j = np.triu_indices(len(members), k=1)
        firsts.append(members[i])
        seconds.append(members[j])
        start = stop
    a, b = np.concatenate(firsts), np.concatenate(seconds)
    fails = np.einsum("ij,ij->i", x[a], x[b]) < threshold
    rows = []
    for cutoff in cutoffs:
        kept_face = q >= cutoff
        kept_pair = kept_face[a] & kept_face[b]
        rows.append({
            "quality_at_least": float(cutoff),
            "faces_removed_percent": float(100.0 * (1.0 - kept_face.mean())),
            "pairs_kept": int(kept_pair.sum()),
            "fnmr_before": float(fails.mean()),
            "fnmr_after": float(fails[kept_pair].mean()) if kept_pair.any() else float("nan"),
        })
    return rows
