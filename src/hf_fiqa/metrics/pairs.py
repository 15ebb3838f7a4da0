"""Comparison pairs and their similarity scores for FIQA evaluation.

Genuine pairs (same identity) are few: all of them are used. Impostor pairs grow as N^2, so they
are either all enumerated block by block (when their number is within a bound) or sampled
uniformly without replacement with a seeded generator; an N x N matrix is never built.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

DEFAULT_MAX_IMPOSTORS = 1_000_000


@dataclass(frozen=True)
class Pairs:
    """Index pairs ``(i, j)`` with ``i < j`` into the sample arrays."""

    genuine: np.ndarray  # (G, 2) int64
    impostor: np.ndarray  # (I, 2) int64
    impostors_sampled: bool  # True when ``impostor`` is a random subset of all impostor pairs
    n_impostor_total: int  # how many impostor pairs exist in total


def encode_identities(identities: Any) -> np.ndarray:
    """Map any identity labels (strings, ints) to dense int64 codes; raise on missing labels."""
    labels = np.asarray(identities)
    if labels.ndim != 1:
        labels = labels.reshape(-1)
    if labels.size == 0:
        raise ValueError("identities is empty")
    if labels.dtype.kind == "f" and not np.isfinite(labels).all():
        raise ValueError("identities holds NaN/inf labels")
    if labels.dtype.kind == "O" and any(v is None or (isinstance(v, float) and v != v) for v in labels):
        raise ValueError("identities holds missing labels (None/NaN)")
    _, codes = np.unique(labels, return_inverse=True)
    return codes.astype(np.int64).reshape(-1)


def genuine_pairs(codes: np.ndarray) -> np.ndarray:
    """All ``(i, j)``, ``i < j``, with the same identity code, as an ``(G, 2)`` int64 array.

    Identities of equal size are handled together (one ``triu_indices`` per distinct size), so
    the cost does not depend on the number of identities.
    """
    codes = np.asarray(codes, dtype=np.int64)
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
    sizes = np.diff(np.r_[starts, codes.shape[0]])
    chunks = []
    for size in np.unique(sizes):
        if size < 2:
            continue
        group_starts = starts[sizes == size]
        members = order[group_starts[:, None] + np.arange(size)[None, :]]  # (groups, size)
        ia, ib = np.triu_indices(int(size), k=1)
        a, b = members[:, ia].reshape(-1), members[:, ib].reshape(-1)
        chunks.append(np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1))
    if not chunks:
        return np.empty((0, 2), dtype=np.int64)
    return np.concatenate(chunks).astype(np.int64)


def count_impostor_pairs(codes: np.ndarray) -> int:
    """Number of unordered pairs with different identities: ``C(N, 2) - sum C(n_c, 2)``."""
    n = int(codes.shape[0])
    sizes = np.bincount(codes).astype(np.int64)
    return n * (n - 1) // 2 - int(np.sum(sizes * (sizes - 1) // 2))


def all_impostor_pairs(codes: np.ndarray, block_cells: int = 4_000_000) -> np.ndarray:
    """Every impostor pair, built in row blocks of about ``block_cells`` candidate cells."""
    n = codes.shape[0]
    block_rows = max(1, block_cells // max(n, 1))
    out = []
    cols = np.arange(n)
    for r0 in range(0, n, block_rows):
        rows = np.arange(r0, min(n, r0 + block_rows))
        mask = (codes[rows, None] != codes[None, :]) & (cols[None, :] > rows[:, None])
        ri, cj = np.nonzero(mask)
        out.append(np.stack([rows[ri], cj], axis=1))
    return np.concatenate(out).astype(np.int64) if out else np.empty((0, 2), dtype=np.int64)


def sample_impostor_pairs(codes: np.ndarray, count: int, seed: int = 0, max_rounds: int = 1000) -> np.ndarray:
    """``count`` distinct impostor pairs drawn uniformly at random (rejection sampling).

    Draws random ``(i, j)``, drops same-identity and self pairs, de-duplicates by ``i * N + j``
    and repeats until enough; sorted by ``(i, j)`` so results do not depend on draw order. When
    ``count`` is more than a quarter of all impostor pairs, rejection would stall near the end,
    so all pairs are enumerated and a subset chosen instead.
    """
    codes = np.asarray(codes, dtype=np.int64)
    n = int(codes.shape[0])
    total = count_impostor_pairs(codes)
    if count > total:
        raise ValueError(f"asked for {count} impostor pairs but only {total} exist")
    rng = np.random.default_rng(seed)
    if 4 * count >= total:
        every = all_impostor_pairs(codes)
        return every[np.sort(rng.choice(every.shape[0], size=count, replace=False))]
    keys = np.empty(0, dtype=np.int64)
    for _ in range(max_rounds):
        need = count - keys.shape[0]
        if need <= 0:
            break
        draw = int(need * 1.3) + 64
        a = rng.integers(0, n, size=draw)
        b = rng.integers(0, n, size=draw)
        ok = codes[a] != codes[b]
        lo, hi = np.minimum(a[ok], b[ok]), np.maximum(a[ok], b[ok])
        keys = np.unique(np.concatenate([keys, lo * n + hi]))
    if keys.shape[0] < count:
        raise RuntimeError(f"could not draw {count} distinct impostor pairs in {max_rounds} rounds")
    if keys.shape[0] > count:
        keys = np.sort(rng.choice(keys, size=count, replace=False))
    return np.stack([keys // n, keys % n], axis=1).astype(np.int64)


def build_pairs(identities: Any, max_impostors: int | None = DEFAULT_MAX_IMPOSTORS, seed: int = 0) -> Pairs:
    """All genuine pairs and all (or ``max_impostors`` random) impostor pairs of a labelled set.

    ``max_impostors=None`` enumerates every impostor pair (only sensible for small sets).
    """
    codes = encode_identities(identities)
    total = count_impostor_pairs(codes)
    if max_impostors is not None and max_impostors < 1:
        raise ValueError(f"max_impostors must be positive, got {max_impostors}")
    sampled = max_impostors is not None and total > max_impostors
    impostor = sample_impostor_pairs(codes, int(max_impostors), seed) if sampled else all_impostor_pairs(codes)
    return Pairs(genuine=genuine_pairs(codes), impostor=impostor, impostors_sampled=sampled, n_impostor_total=total)


def normalise_embeddings(embeddings: Any) -> np.ndarray:
    """L2-normalised float32 copy of ``(N, D)`` embeddings; zero or non-finite rows are errors."""
    emb = np.asarray(embeddings)
    if emb.ndim != 2:
        raise ValueError(f"embeddings must have shape (N, D), got {emb.shape}")
    emb = emb.astype(np.float32, copy=True)
    bad_rows = ~np.isfinite(emb).all(axis=1)
    if bad_rows.any():
        raise ValueError(f"embeddings rows {np.flatnonzero(bad_rows)[:10].tolist()} hold NaN/inf")
    norms = np.linalg.norm(emb, axis=1)
    zero = norms == 0
    if zero.any():
        raise ValueError(f"embeddings rows {np.flatnonzero(zero)[:10].tolist()} are all zeros (no direction)")
    emb /= norms[:, None]
    return emb


def pair_similarities(
    embeddings: Any,
    pairs: np.ndarray,
    chunk_size: int = 65536,
    progress: bool = False,
    normalised: bool = False,
) -> np.ndarray:
    """Cosine similarity of each pair, computed ``chunk_size`` pairs at a time (float64 result).

    Pass ``normalised=True`` when ``embeddings`` already came from :func:`normalise_embeddings`
    to skip the copy.
    """
    from tqdm.auto import tqdm

    emb = np.asarray(embeddings, dtype=np.float32) if normalised else normalise_embeddings(embeddings)
    pairs = np.asarray(pairs, dtype=np.int64)
    if pairs.size and (pairs.min() < 0 or pairs.max() >= emb.shape[0]):
        raise ValueError(f"pairs index embeddings outside 0..{emb.shape[0] - 1}")
    out = np.empty(pairs.shape[0], dtype=np.float64)
    steps = range(0, pairs.shape[0], chunk_size)
    for start in tqdm(steps, desc="similarities", unit="chunk", disable=not progress or len(steps) < 2):
        p = pairs[start : start + chunk_size]
        out[start : start + p.shape[0]] = np.einsum("ij,ij->i", emb[p[:, 0]], emb[p[:, 1]])
    return out


def equal_error_rate(genuine: np.ndarray, impostor: np.ndarray) -> float:
    """The error rate where false non-matches equal false matches (thresholds at every observed score)."""
    scores = np.concatenate([genuine, impostor])
    is_genuine = np.concatenate([np.ones(len(genuine)), np.zeros(len(impostor))])
    order = np.argsort(-scores, kind="stable")
    g = np.cumsum(is_genuine[order])  # genuine accepted at each cut
    i = np.cumsum(1 - is_genuine[order])
    fnmr = 1 - g / len(genuine)
    fmr = i / len(impostor)
    k = int(np.argmin(np.abs(fnmr - fmr)))
    return float((fnmr[k] + fmr[k]) / 2)
