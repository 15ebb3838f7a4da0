"""SDD-FIQA pseudo-labels for probes scored against a clean reference set.

Graded degraded copies of a face teach a quality network what blur, noise or a dark exposure
cost a recognizer, but only if their labels are honest: a blurred copy compared with its own
sharp source looks like a near-perfect genuine match whatever the blur did to it. So here every
probe (a clean photo or a degraded copy) is compared only with *reference* photos (the clean
set), never with photos that share its ``source``:

* Pos(x): similarities to up to ``num_pos`` random reference photos of x's identity, excluding
  every reference photo of x's source (for a clean photo: itself);
* Neg(x): similarities to ``num_neg`` random reference photos of other identities (each draw uniform
  without replacement);
* W(x) = Wasserstein-1 distance between the two samples, repeated ``repetitions`` times with
  fresh draws; each repetition is min-max normalised to [0, 100] over all probes together, and the
  label is the mean, exactly as in :mod:`hf_fiqa.labels.sdd`.

For clean probes this is SDD-FIQA itself. The similarity matrix is formed one chunk of probes at
a time against the whole reference set, which is right for tens of thousands of references (LFW,
CelebA); MS1M-scale labelling of clean photos stays with :func:`hf_fiqa.labels.sdd_pseudo_labels`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from .sdd import normalise_repetitions
from .wasserstein import wasserstein_1d


@dataclass
class ReferenceLabels:
    """``quality`` per probe in [0, 100] (NaN where a probe has no positive), raw mean W, counts."""

    quality: np.ndarray
    wasserstein: np.ndarray
    num_positives: np.ndarray


def _unit(x: np.ndarray, what: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or not np.isfinite(x).all():
        raise ValueError(f"{what}: expected a finite (N, D) array, got shape {x.shape}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if (norms <= 0).any():
        raise ValueError(f"{what}: {int((norms <= 0).sum())} rows have zero norm")
    return x / norms


def _uniform_picks(rng: np.random.Generator, candidates: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, up to ``k`` columns drawn uniformly without replacement among the row's ``candidates`` (a boolean
    (B, C) mask): random keys, then the k smallest (non-candidates get +inf keys and come last). Returns the
    picked columns and whether each is a candidate (False: the row had fewer than k, the pick is padding)."""
    keys = np.where(candidates, rng.random(candidates.shape), np.inf)
    k = min(k, candidates.shape[1])
    pick = np.argpartition(keys, k - 1, axis=1)[:, :k]
    return pick, np.take_along_axis(candidates, pick, axis=1)


def _other_identity_picks(rng: np.random.Generator, start: np.ndarray, count: np.ndarray, total: int,
                          k: int) -> np.ndarray:
    """Per row, ``k`` distinct reference columns drawn uniformly outside the row's own identity block
    ``[start, start + count)`` (references sorted by identity): draws over the ``total - count`` others, shifted past
    the block, with rows that drew a column twice drawn again (quick where the others are many times ``k``)."""
    others = (total - count)[:, None]
    draw = np.floor(rng.random((len(start), k)) * others).astype(np.int64)
    while True:
        ordered = np.sort(draw, axis=1)
        again = (ordered[:, 1:] == ordered[:, :-1]).any(axis=1)
        if not again.any():
            break
        draw[again] = np.floor(rng.random((int(again.sum()), k)) * others[again]).astype(np.int64)
    return draw + (draw >= start[:, None]) * count[:, None]


def reference_pseudo_labels(
    probe_embeddings: np.ndarray,
    probe_identities: np.ndarray,
    probe_sources: np.ndarray,
    reference_embeddings: np.ndarray,
    reference_identities: np.ndarray,
    reference_sources: np.ndarray,
    num_pos: int = 24,
    num_neg: int = 24,
    repetitions: int = 12,
    seed: int = 0,
    chunk_size: int = 1024,
    progress: bool = True,
) -> ReferenceLabels:
    """Labels of every probe against the reference set; see the module docstring.

    ``*_sources`` name the original photo each row was made from (a clean reference photo is its
    own source); rows sharing a source are never compared.
    """
    probes = _unit(probe_embeddings, "probe embeddings")
    refs = _unit(reference_embeddings, "reference embeddings")
    p_ids, r_ids = np.asarray(probe_identities).astype(str), np.asarray(reference_identities).astype(str)
    p_src, r_src = np.asarray(probe_sources).astype(str), np.asarray(reference_sources).astype(str)
    if not (len(p_ids) == len(p_src) == len(probes)) or not (len(r_ids) == len(r_src) == len(refs)):
        raise ValueError("each embedding row needs one identity and one source")
    if num_pos < 1 or num_neg < 1 or repetitions < 1:
        raise ValueError("num_pos, num_neg and repetitions must be positive")
    n = len(probes)
    raw = np.full((n, repetitions), np.nan)
    n_pos = np.zeros(n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    # References sorted by identity: a probe's positives lie in its identity's block, its negatives everywhere else,
    # so each draw looks at a block (positives) or at k random columns (negatives), not at every reference.
    order = np.argsort(r_ids, kind="stable")
    refs, r_ids, r_src = refs[order], r_ids[order], r_src[order]
    names, first, size = np.unique(r_ids, return_index=True, return_counts=True)
    where = np.searchsorted(names, p_ids).clip(0, len(names) - 1)
    known = names[where] == p_ids
    p_start, p_count = np.where(known, first[where], 0), np.where(known, size[where], 0)
    if (len(refs) - p_count < num_neg).any():
        raise ValueError(f"every probe needs at least num_neg={num_neg} reference photos of other identities")
    bar = tqdm(total=n, unit="face", desc="SDD-FIQA labels", disable=not progress)
    for lo in range(0, n, chunk_size):
        hi = min(n, lo + chunk_size)
        sims = probes[lo:hi] @ refs.T  # (B, R)
        start, count = p_start[lo:hi], p_count[lo:hi]
        width = max(1, int(count.max()))
        block = np.minimum(start[:, None] + np.arange(width)[None, :], len(refs) - 1)  # (B, width) columns
        positive = (np.arange(width)[None, :] < count[:, None]) & (r_src[block] != p_src[lo:hi, None])
        n_pos[lo:hi] = positive.sum(axis=1)
        has = n_pos[lo:hi] > 0
        few_others = bool((len(refs) - count < 4 * num_neg).any())
        for rep in range(repetitions):
            pick, real = _uniform_picks(rng, positive, num_pos)
            pos = np.take_along_axis(sims, np.take_along_axis(block, pick, axis=1), axis=1).astype(np.float64)
            pos[~real] = np.inf  # fewer positives than num_pos: padding
            if few_others:  # small reference sets: redrawing repeats would take long; keys over every column
                picks, _ = _uniform_picks(rng, ~(p_ids[lo:hi, None] == r_ids[None, :]), num_neg)
            else:
                picks = _other_identity_picks(rng, start, count, len(refs), num_neg)
            neg = np.take_along_axis(sims, picks, axis=1).astype(np.float64)
            if has.any():
                raw[lo:hi][has, rep] = wasserstein_1d(pos[has], neg[has])
        bar.update(hi - lo)
    bar.close()
    labelled = n_pos > 0
    quality = np.full(n, np.nan)
    if labelled.any():
        quality[labelled], _ = normalise_repetitions(raw[labelled])
    return ReferenceLabels(quality=quality, wasserstein=np.nanmean(np.where(labelled[:, None], raw, 0.0), axis=1),
                           num_positives=n_pos)
