"""Group rows by identity once, and cut the grouped rows into shard- and chunk-sized pieces.

The SDD-FIQA reference code finds an identity's images by scanning all rows for each identity
(O(rows x identities): days at MS1M scale). Here a single stable sort by identity code puts each
identity's rows next to each other ("sorted positions"); ``starts``/``sizes`` then locate any
identity in O(1). Shards (one per process) and chunks (one per processing step) are ranges of
sorted positions that never split an identity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["IdentityIndex", "group_identities", "shard_range", "chunk_ranges"]


@dataclass(frozen=True)
class IdentityIndex:
    """Rows grouped by identity.

    Attributes:
        labels: the distinct identity values, sorted (``labels[code]`` is the original value).
        codes: identity code of each input row, ``(N,)`` int64.
        order: input row index at each sorted position, ``(N,)`` int64 (stable: rows of one
            identity keep their input order).
        starts, sizes: first sorted position and row count of each identity code, ``(C,)`` int64.
    """

    labels: np.ndarray
    codes: np.ndarray
    order: np.ndarray
    starts: np.ndarray
    sizes: np.ndarray

    @property
    def num_rows(self) -> int:
        return int(self.codes.shape[0])

    @property
    def num_identities(self) -> int:
        return int(self.sizes.shape[0])


def _as_identity_array(identities: object) -> np.ndarray:
    ids = np.asarray(identities)
    if ids.ndim != 1:
        raise ValueError(f"identities must be a 1-D array, got shape {ids.shape}")
    if ids.dtype.kind not in "iuUSb":
        raise ValueError(f"identities must be integers or strings (a unicode dtype array), got dtype {ids.dtype}")
    return ids


def group_identities(identities: object) -> IdentityIndex:
    """Sort rows by identity once and derive each identity's block of sorted positions."""
    ids = _as_identity_array(identities)
    labels, codes = np.unique(ids, return_inverse=True)
    codes = codes.reshape(-1).astype(np.int64, copy=False)
    order = np.argsort(codes, kind="stable").astype(np.int64, copy=False)
    sizes = np.bincount(codes, minlength=labels.shape[0]).astype(np.int64)
    starts = np.zeros_like(sizes)
    np.cumsum(sizes[:-1], out=starts[1:])
    return IdentityIndex(labels=labels, codes=codes, order=order, starts=starts, sizes=sizes)


def _identity_boundary(index: IdentityIndex, position: int) -> int:
    """The first identity start at or after sorted ``position`` (``N`` past the end)."""
    i = int(np.searchsorted(index.starts, position, side="left"))
    return int(index.starts[i]) if i < index.num_identities else index.num_rows


def shard_range(index: IdentityIndex, rank: int, world_size: int) -> tuple[int, int]:
    """Sorted positions ``[lo, hi)`` of process ``rank``: whole identities, balanced by rows."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"invalid shard {rank} of {world_size}")
    n = index.num_rows
    return _identity_boundary(index, rank * n // world_size), _identity_boundary(index, (rank + 1) * n // world_size)


def chunk_ranges(index: IdentityIndex, lo: int, hi: int, chunk_rows: int) -> list[tuple[int, int]]:
    """Split ``[lo, hi)`` (identity-aligned) into identity-aligned pieces of about ``chunk_rows``.

    A piece holds at most ``chunk_rows`` rows unless a single identity is larger.
    """
    out: list[tuple[int, int]] = []
    a = lo
    while a < hi:
        # Last identity start not beyond a + chunk_rows; at least one whole identity.
        j = int(np.searchsorted(index.starts, a + chunk_rows, side="right")) - 1
        b = int(index.starts[j]) if j >= 0 else a
        if a + chunk_rows >= hi:
            b = hi
        if b <= a:
            b = _identity_boundary(index, a + 1)
        b = min(b, hi)
        out.append((a, b))
        a = b
    return out
