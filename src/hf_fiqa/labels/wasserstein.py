"""Batched 1-D Wasserstein-1 distances between rows of two similarity matrices.

SDD-FIQA scores an image by W-1 between its positive (same identity) and negative (other
identities) similarity samples; the reference code calls ``scipy.stats.wasserstein_distance``
once per image, which is far too slow for millions of images. Here every row of a batch is one
(u, v) pair and the whole batch is handled with a handful of array operations.

Two formulations, both equal to scipy's result for unweighted samples:

* equal sizes (the common case: 24 positives and 24 negatives): with both samples sorted,
  W-1 is ``mean |u_(i) - v_(i)|`` (the quantile functions are step functions on the same grid);
* any sizes: the CDF formula scipy uses, ``sum_i |U(x_i) - V(x_i)| * (x_{i+1} - x_i)`` over the
  sorted union of both samples. The CDF values are exact integer counts divided by the sample
  sizes (in float64), so the result does not drift with tens of thousands of values.

Ragged batches (rows with different sample sizes) are padded with ``+inf``: padding sorts to the
end of each row, counts for nothing in the CDFs, and the interval that would reach it is masked.
Inputs must otherwise be finite (cosine similarities are).

NumPy rather than torch: on the CPUs we measured, ``np.sort`` along short rows is about 10x
faster than ``torch.sort`` (and the GPU path only needs the matrix products on the device).
"""

from __future__ import annotations

import numpy as np

__all__ = ["wasserstein_1d_equal", "wasserstein_1d_padded", "wasserstein_1d"]


def _check_pair(u: np.ndarray, v: np.ndarray) -> None:
    if u.ndim != 2 or v.ndim != 2 or u.shape[0] != v.shape[0]:
        raise ValueError(f"expected (B, P) and (B, Q) arrays, got {u.shape} and {v.shape}")


def wasserstein_1d_equal(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """W-1 per row for two ``(B, K)`` arrays without padding (every row has K values in each).

    Returns float64 ``(B,)``.
    """
    u, v = np.asarray(u), np.asarray(v)
    _check_pair(u, v)
    if u.shape != v.shape:
        raise ValueError(f"equal-size W-1 needs matching shapes, got {u.shape} and {v.shape}")
    if u.shape[1] == 0:
        raise ValueError("W-1 of empty samples is undefined")
    us = np.sort(u, axis=1)
    vs = np.sort(v, axis=1)
    np.subtract(us, vs, out=us)
    return np.abs(us, out=us).mean(axis=1, dtype=np.float64)


def wasserstein_1d_padded(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """W-1 per row for ``(B, P)`` and ``(B, Q)`` arrays where ``+inf`` marks padding.

    Each row of ``u`` and of ``v`` must hold at least one finite value. Returns float64 ``(B,)``
    equal to ``scipy.stats.wasserstein_distance(u_row[finite], v_row[finite])``.
    """
    u, v = np.asarray(u), np.asarray(v)
    _check_pair(u, v)
    if u.shape[0] == 0:
        return np.zeros(0, dtype=np.float64)
    p = u.shape[1]
    u_count = np.isfinite(u).sum(axis=1)
    v_count = np.isfinite(v).sum(axis=1)
    if (u_count == 0).any() or (v_count == 0).any():
        raise ValueError("every row needs at least one finite value in each sample")
    both = np.concatenate([u, v.astype(u.dtype, copy=False)], axis=1)
    order = np.argsort(both, axis=1)
    values = np.take_along_axis(both, order, axis=1)
    finite = np.isfinite(values)
    from_u = order < p
    # CDFs after each sorted point, as exact counts turned into fractions in float64.
    u_cdf = np.cumsum(from_u & finite, axis=1) / u_count[:, None]
    v_cdf = np.cumsum(~from_u & finite, axis=1) / v_count[:, None]
    with np.errstate(invalid="ignore"):  # inf - inf between paddings; masked next
        gaps = np.diff(values, axis=1)
    gaps[~finite[:, 1:]] = 0.0  # an interval counts only when it ends on a real value
    return (np.abs(u_cdf[:, :-1] - v_cdf[:, :-1]) * gaps).sum(axis=1)


def wasserstein_1d(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """W-1 per row, taking the equal-size path when no row is padded (float64 result)."""
    u, v = np.asarray(u), np.asarray(v)
    if u.shape == v.shape and np.isfinite(u).all() and np.isfinite(v).all():
        return wasserstein_1d_equal(u, v)
    return wasserstein_1d_padded(u, v)
