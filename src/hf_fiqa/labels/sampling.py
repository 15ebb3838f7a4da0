"""Keyed random draws for SDD-FIQA sampling.

Reproducibility across processes: every random number used for a row comes from a generator
keyed by ``(seed, repetition, sampling block, stream)`` where the sampling block is a fixed run
of rows in identity-sorted order (:data:`hf_fiqa.labels.shard.BLOCK_ROWS`). Whichever process
handles a block, and in whichever chunk, draws the same numbers, so a sharded run equals a
single-process run.

Sampling without replacement for a whole batch of rows at once uses Robert Floyd's algorithm:
k steps, each one vectorised over all rows, for per-row population sizes. It costs O(k^2) per row
regardless of the population size (a random-key sort would cost O(population)).
"""

from __future__ import annotations

import numpy as np

__all__ = ["STREAM_POOL", "STREAM_POSITIVES", "STREAM_NEGATIVES", "STREAM_NEGATIVES_DIRECT", "group_rng", "floyd_sample"]

# Independent streams per (seed, repetition, block).
STREAM_POOL = 0
STREAM_POSITIVES = 1
STREAM_NEGATIVES = 2
STREAM_NEGATIVES_DIRECT = 3


def group_rng(seed: int, repetition: int, block: int, stream: int) -> np.random.Generator:
    """The generator owning one sampling block's draws of one kind in one repetition."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(repetition), int(block), int(stream)]))


def floyd_sample(uniforms: np.ndarray, population: np.ndarray) -> np.ndarray:
    """Draw ``k`` distinct indices in ``[0, population[i])`` for every row ``i``.

    Args:
        uniforms: ``(B, k)`` float64 values in ``[0, 1)``, one per step (from a keyed generator).
        population: ``(B,)`` int64 population sizes, each ``>= k``.

    Returns:
        ``(B, k)`` int64 indices, distinct within each row; every k-subset is equally likely.
        The order within a row is not uniformly random (callers only use them as sets).
    """
    u = np.asarray(uniforms, dtype=np.float64)
    n = np.asarray(population, dtype=np.int64)
    b, k = u.shape
    if n.shape != (b,):
        raise ValueError(f"population must have shape ({b},), got {n.shape}")
    if b == 0 or k == 0:
        return np.zeros((b, k), dtype=np.int64)
    if int(n.min()) < k:
        raise ValueError(f"cannot draw {k} distinct items from a population of {int(n.min())}")
    # Step-major layout with contiguous rows: each membership test is a few whole-array
    # comparisons (7x faster than testing a (B, step) block per step).
    itype = np.int32 if int(n.max()) < 2**31 - 1 else np.int64
    u_steps = np.ascontiguousarray(u.T)
    n = n.astype(itype)
    out = np.empty((k, b), dtype=itype)
    taken = np.empty(b, dtype=bool)
    same = np.empty(b, dtype=bool)
    for step in range(k):
        top = n - (k - step)  # draw t uniformly from [0, top]
        t = (u_steps[step] * (top + 1.0)).astype(itype)
        np.minimum(t, top, out=t)  # guards the u -> 1 rounding edge
        if step:
            np.equal(out[0], t, out=taken)
            for j in range(1, step):
                np.equal(out[j], t, out=same)
                taken |= same
            t = np.where(taken, top, t)
        out[step] = t
    return out.T.astype(np.int64)
