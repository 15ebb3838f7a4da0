"""A quality number people can act on: 0-100, fixed on calibration data, with a stated meaning.

A quality network regresses pseudo-labels whose scale depends on the dataset they were normalised
over; "73" means nothing by itself. Here the raw score is mapped, monotonically, to

    quality = 100 x (1 - expected fraction of genuine comparisons that fail, among those whose worse photo
                         scores as this face does)

at one fixed decision threshold of the recognizer (from a target false-match rate on impostor
comparisons). The map is a logistic fit of failed genuine comparisons against their raw score
(strictly monotone, so no two faces the network tells apart get the same quality), stored as two
numbers in the model's config (``quality_calibration``), so the model alone and every pipeline give
the same number. :func:`discard_table` turns a set of faces into the "discard below Q" table users
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


def genuine_pair_rejections(embeddings: np.ndarray, identities: Sequence[Any],
                            threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Every genuine pair ``(i, j)``, ``i < j``, of a face set (``(G, 2)``) and whether the recognizer rejects it
    (cosine similarity below ``threshold``).

    The calibration speaks of pairs, not faces: a face's rejection rate against "the person's other photos"
    depends on how good those other photos are, which changes from one collection to the next (CFP's profiles
    drag down every frontal photo of the same person), while a pair scored by its worse photo, as FNM-EDC scores it,
    carries its cause with it.
    """
    from .pairs import encode_identities, genuine_pairs, pair_similarities

    pairs = genuine_pairs(encode_identities(np.asarray(identities).astype(str)))
    return pairs, pair_similarities(embeddings, pairs) < threshold


def fit_quality_calibration(scores: np.ndarray, failures: np.ndarray, comparisons: np.ndarray,
                            meaning: str = "", iterations: int = 100,
                            weights: np.ndarray | None = None) -> dict[str, Any]:
    """Logistic calibration: ``P(a genuine comparison fails | score) = sigmoid(a + b * score)``.

    Fitted by maximum likelihood on each calibration sample's ``failures`` out of ``comparisons`` (a sample is
    whatever carries the score: in the main job a genuine pair scored by its worse photo; Newton's method on the
    binomial log-likelihood, the raw score standardised for stability). ``weights`` scale each sample's
    log-likelihood: the main job gives every person the same total weight, so that a person with hundreds of photos
    (tens of thousands of pairs) does not make the promise his alone.
    The returned dict is what ``MANIQAConfig.quality_calibration`` takes: ``quality = 100 x (1 -
    P(fail))``. A logistic rather than an isotonic fit: a monotone step function would give many faces
    the same quality and throw away the ranking the network makes.
    """
    s = np.asarray(scores, dtype=np.float64)
    k = np.asarray(failures, dtype=np.float64)
    n = np.asarray(comparisons, dtype=np.float64)
    w = np.ones_like(s) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != s.shape or (w < 0).any() or not np.isfinite(w).all():
        raise ValueError(f"calibration weights: one finite non-negative weight per score, got shape {w.shape}")
    ok = np.isfinite(s) & np.isfinite(k) & (n > 0) & (w > 0)
    if ok.sum() < 10:
        raise ValueError(f"calibration needs at least 10 samples with a score and genuine comparisons, got {int(ok.sum())}")
    s, k, n, w = s[ok], k[ok], n[ok], w[ok]
    if not 0 < k.sum() < n.sum():
        raise ValueError("calibration needs both failed and successful genuine comparisons")
    observed = (w * k).sum() / (w * n).sum()
    mean, std = s.mean(), s.std()
    if std <= 0:
        raise ValueError("calibration scores are all equal; the model does not rank faces")
    z = (s - mean) / std
    x = np.column_stack([np.ones_like(z), z])
    beta = np.array([np.log(observed / (1 - observed)), 0.0])
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(x @ beta)))
        gradient = x.T @ (w * (k - n * p))
        hessian = (x * (w * n * p * (1 - p))[:, None]).T @ x + 1e-9 * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        beta += step
        if np.abs(step).max() < 1e-10:
            break
    slope = beta[1] / std
    intercept = beta[0] - slope * mean
    if slope == 0 or not np.isfinite([intercept, slope]).all():
        raise ValueError("the calibration fit failed: the score does not predict failures")
    return {"intercept": float(intercept), "slope": float(slope), "meaning": meaning, "num_samples": int(ok.sum()),
            "num_comparisons": int(n.sum()), "failure_rate": float(observed)}


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


DEFAULT_BANDS = (0.0, 50.0, 70.0, 80.0, 90.0, 95.0, 100.0)


def _identity_weights(identities: Sequence[Any], pairs: int, bootstrap: int, seed: int) -> np.ndarray:
    """``(bootstrap, pairs)`` weights: each pair counted as often as its person was drawn (people with replacement,
    as the EDC intervals of :mod:`hf_fiqa.metrics.bootstrap`)."""
    from .bootstrap import bootstrap_rng, identity_counts

    _, person = np.unique(np.asarray(identities).astype(str), return_inverse=True)
    if len(person) != pairs:
        raise ValueError(f"calibration: one identity per pair, got {len(person)} for {pairs} pairs")
    return identity_counts(int(person.max()) + 1, bootstrap, bootstrap_rng(seed))[:, person].astype(np.float64)


def _bands(q: np.ndarray, n: np.ndarray, edges: Sequence[float]) -> list[tuple[float, float, np.ndarray]]:
    """``(low, high, mask)`` per band ``[low, high)`` of the usable pairs (the last band includes ``high``)."""
    usable = np.isfinite(q) & (n > 0)
    last = len(edges) - 2
    return [(low, high, usable & (q >= low) & ((q <= high) if i == last else (q < high)))
            for i, (low, high) in enumerate(zip(edges, edges[1:]))]


def _resampled_shares(k: np.ndarray, n: np.ndarray, band: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The band's observed rejected share (percent) in each identity resample; NaN where no pair was drawn."""
    drawn = weights[:, band] @ n[band]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(drawn > 0, 100.0 * (weights[:, band] @ k[band]) / drawn, np.nan)


def calibration_bands(qualities: np.ndarray, failures: np.ndarray, comparisons: np.ndarray,
                      edges: Sequence[float] = DEFAULT_BANDS, identities: Sequence[Any] | None = None,
                      bootstrap: int = 0, seed: int = 0, level: float = 0.95) -> list[dict[str, float]]:
    """Claimed against observed per quality band: does ``quality`` keep its promise on these pairs?

    ``qualities`` is per genuine pair (the lower of its two photos' qualities), ``failures`` of ``comparisons``
    the recognizers that rejected it (:func:`genuine_pair_rejections`, summed over recognizers). For the pairs
    whose quality falls in ``[low, high)`` (the last band includes 100): ``claimed_percent`` is the mean of ``100 -
    quality`` (the rejection rate the quality promises), ``observed_percent`` the share of their comparisons that
    failed.

    A band of a few hundred pairs from a hundred people is a small sample: with ``identities`` (the person of each
    pair) and ``bootstrap`` resamples, ``observed_low``/``observed_high`` bound the observed share over identity
    resamples (people drawn with replacement, each pair weighted by its person's draws, as the EDC intervals of
    :mod:`hf_fiqa.metrics.bootstrap`), so a miss can be told from the luck of which people were photographed.
    """
    q = np.asarray(qualities, dtype=np.float64)
    k, n = np.asarray(failures, dtype=np.float64), np.asarray(comparisons, dtype=np.float64)
    weights = _identity_weights(identities, len(q), bootstrap, seed) if bootstrap and identities is not None else None
    rows = []
    for low, high, band in _bands(q, n, edges):
        row = {
            "low": float(low), "high": float(high), "pairs": int(band.sum()),
            "comparisons": int(n[band].sum()),
            "claimed_percent": float(np.mean(100.0 - q[band])) if band.any() else float("nan"),
            "observed_percent": float(100.0 * k[band].sum() / n[band].sum()) if band.any() else float("nan"),
        }
        if weights is not None:
            shares = _resampled_shares(k, n, band, weights)
            shares = shares[np.isfinite(shares)]
            tail = 100.0 * (1.0 - level) / 2.0
            low_pct, high_pct = np.percentile(shares, [tail, 100.0 - tail]) if len(shares) else (np.nan, np.nan)
            row.update(observed_low=float(low_pct), observed_high=float(high_pct))
        rows.append(row)
    return rows


def perfect_calibration_pass_rate(qualities: np.ndarray, failures: np.ndarray, comparisons: np.ndarray,
                                  identities: Sequence[Any], tolerance: float = 5.0,
                                  edges: Sequence[float] = DEFAULT_BANDS, bootstrap: int = 1000,
                                  seed: int = 0) -> float:
    """How often a check on this many people would pass a quality that is exactly right.

    "Within ``tolerance`` points in every band" is a test a perfectly calibrated quality can fail by the luck of
    which people were photographed. Take the observed share of each band as the truth (a quality promising exactly
    that), redraw the people (identity bootstrap, as :func:`calibration_bands`) and count the resamples in which
    every band's share stays within ``tolerance`` points of it. Near 1: the check can tell a miss; far below: a
    miss says little, and a pass little more. Bands without pairs are left out; a resample that draws no pair of a
    band counts as a miss.
    """
    q = np.asarray(qualities, dtype=np.float64)
    k, n = np.asarray(failures, dtype=np.float64), np.asarray(comparisons, dtype=np.float64)
    weights = _identity_weights(identities, len(q), bootstrap, seed)
    within = np.ones(len(weights), dtype=bool)
    for _, _, band in _bands(q, n, edges):
        if band.any():
            truth = 100.0 * k[band].sum() / n[band].sum()
            within &= np.abs(np.nan_to_num(_resampled_shares(k, n, band, weights), nan=np.inf) - truth) <= tolerance
    return float(within.mean())


def calibration_markdown(rows: list[dict[str, float]], title: str) -> str:
    """:func:`calibration_bands` as a Markdown table under ``title`` (with the observed share's interval when the
    rows carry one)."""
    interval = all("observed_low" in row for row in rows)
    head = "| pair quality band | genuine pairs | comparisons | promised rejected | observed rejected |"
    rule = "| --- | ---: | ---: | ---: | ---: |"
    if interval:
        head, rule = head + " observed, 95 % interval |", rule + " :---: |"
    lines = [f"### {title}", "", head, rule]
    for row in rows:
        line = (f"| {row['low']:g}-{row['high']:g} | {row['pairs']} | {row['comparisons']} | "
                f"{row['claimed_percent']:.1f} % | {row['observed_percent']:.1f} % |")
        if interval:
            line += f" {row['observed_low']:.1f}-{row['observed_high']:.1f} % |"
        lines.append(line)
    return "\n".join(lines) + "\n"
