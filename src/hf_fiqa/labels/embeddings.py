"""Checked, L2-normalised access to an embedding matrix that may not fit in memory.

Embeddings arrive as ``(N, D)`` float16/float32/float64 arrays, often memory-mapped
(``np.load(path, mmap_mode="r")``) because MS1M-scale float32 matrices are ~12 GB. One streaming
pass checks every row (finite values, non-zero norm) and keeps only the ``(N,)`` inverse norms;
later, rows are read on demand, cast to float32 and normalised, a chunk at a time.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

__all__ = ["EmbeddingError", "EmbeddingSource", "RowSubset", "check_embeddings"]

_SHOW_ROWS = 5


class EmbeddingError(ValueError):
    """The embedding matrix cannot be used; the message names the offending rows."""


def _rows_text(rows: np.ndarray) -> str:
    shown = ", ".join(str(int(r)) for r in rows[:_SHOW_ROWS])
    more = f", ... ({rows.shape[0]} rows in all)" if rows.shape[0] > _SHOW_ROWS else ""
    return f"[{shown}{more}]"


class RowSubset:
    """Selected rows of an embedding matrix, read lazily (the base may be a memory map).

    Indexing with a slice or an index array reads ``base[rows[key]]``; ``name`` maps a position
    back to the base row for error messages.
    """

    def __init__(self, base: np.ndarray, rows: np.ndarray):
        rows = np.asarray(rows, dtype=np.int64)
        if rows.ndim != 1:
            raise ValueError(f"rows must be a 1-D array of row indices, got shape {rows.shape}")
        n = int(base.shape[0])
        if rows.size and (rows.min() < 0 or rows.max() >= n):
            bad = rows[(rows < 0) | (rows >= n)]
            raise ValueError(f"rows {_rows_text(bad)} are out of range for {n} embedding rows")
        self.base = base
        self.rows = rows
        self.shape = (int(rows.shape[0]), int(base.shape[1]))
        self.dtype = base.dtype

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key) -> np.ndarray:
        return np.asarray(self.base[self.rows[key]])

    def name(self, positions: np.ndarray) -> np.ndarray:
        return self.rows[positions]


def check_embeddings(embeddings: np.ndarray, chunk_rows: int = 65536, progress=None, sink=None) -> np.ndarray:
    """Validate every row and return float32 inverse L2 norms, ``(N,)``.

    Raises :class:`EmbeddingError` naming the first few rows holding NaN/inf or having zero
    norm. Reads the matrix once in chunks of ``chunk_rows`` (works on memory maps).
    ``sink(lo, hi, x, inv_norm)``, when given, receives every float32 chunk (to keep a normalised
    copy without converting the matrix twice); ``progress(n)`` is told how many rows were read.
    """
    if not hasattr(embeddings, "shape") or len(embeddings.shape) != 2:
        raise EmbeddingError(f"embeddings must be a 2-D (rows, dim) array, got shape {getattr(embeddings, 'shape', None)}")
    if np.dtype(embeddings.dtype).kind != "f":
        raise EmbeddingError(f"embeddings must be float16/float32/float64, got dtype {embeddings.dtype}")
    n, d = embeddings.shape
    if d == 0:
        raise EmbeddingError("embeddings have zero dimensions")
    inv_norm = np.empty(n, dtype=np.float32)
    bad_finite: list[np.ndarray] = []
    bad_zero: list[np.ndarray] = []
    n_finite = n_zero = 0
    for lo in range(0, n, chunk_rows):
        hi = min(lo + chunk_rows, n)
        x = np.asarray(embeddings[lo:hi], dtype=np.float32)
        sq = np.einsum("ij,ij->i", x, x)
        suspicious = ~np.isfinite(sq)
        if suspicious.any():
            # A huge but finite row can overflow float32 squares; redo those in float64.
            rows = np.flatnonzero(suspicious)
            x64 = x[rows].astype(np.float64)
            nonfinite = ~np.isfinite(x64).all(axis=1)
            sq64 = np.einsum("ij,ij->i", x64, x64)
            if nonfinite.any():
                n_finite += int(nonfinite.sum())
                if sum(len(a) for a in bad_finite) < _SHOW_ROWS:
                    bad_finite.append(lo + rows[nonfinite])
            ok = ~nonfinite
            inv_norm[lo + rows[ok]] = (1.0 / np.sqrt(sq64[ok])).astype(np.float32)
            sq[rows] = 1.0  # handled above
        zero = sq == 0
        if zero.any():
            n_zero += int(zero.sum())
            if sum(len(a) for a in bad_zero) < _SHOW_ROWS:
                bad_zero.append(lo + np.flatnonzero(zero))
            sq[zero] = 1.0
        keep = ~suspicious
        inv_norm[lo:hi][keep] = 1.0 / np.sqrt(sq[keep])
        if sink is not None and not (n_finite or n_zero):
            sink(lo, hi, x, inv_norm[lo:hi])
        if progress is not None:
            progress(hi - lo)
    problems = []
    if isinstance(embeddings, RowSubset):  # name rows of the full matrix, not of the selection
        bad_finite = [embeddings.name(a) for a in bad_finite]
        bad_zero = [embeddings.name(a) for a in bad_zero]
    if n_finite:
        rows = np.concatenate(bad_finite)
        problems.append(f"{n_finite} rows contain NaN or inf, e.g. rows {_rows_text(rows)}")
    if n_zero:
        rows = np.concatenate(bad_zero)
        problems.append(f"{n_zero} rows have zero norm, e.g. rows {_rows_text(rows)}")
    if problems:
        raise EmbeddingError("invalid embeddings: " + "; ".join(problems))
    return inv_norm


class EmbeddingSource:
    """Reads rows of an embedding matrix as normalised float32 tensors on a device.

    Build it with :meth:`open`, which validates the matrix. When the normalised float32 matrix
    takes at most ``cache_bytes`` it is kept on the device (built during validation, so each
    row is converted once): the negative pools then read random rows from it instead of
    converting float16 memory-mapped rows again and again. Larger matrices stay where they are
    and are read chunk by chunk.
    """

    def __init__(self, embeddings: np.ndarray, inv_norm: np.ndarray, device: torch.device, cache: torch.Tensor | None = None):
        self.embeddings = embeddings
        self.inv_norm = inv_norm
        self.device = torch.device(device)
        self.dim = int(embeddings.shape[1])
        self.num_rows = int(embeddings.shape[0])
        self._cache = cache

    @classmethod
    def open(cls, embeddings: np.ndarray, device: torch.device | str, cache_bytes: int = 0, progress=None) -> "EmbeddingSource":
        """Validate ``embeddings`` (see :func:`check_embeddings`) and wrap them."""
        if not hasattr(embeddings, "shape") or len(embeddings.shape) != 2:
            raise EmbeddingError(f"embeddings must be a 2-D (rows, dim) array, got shape {getattr(embeddings, 'shape', None)}")
        n, d = (int(v) for v in embeddings.shape)
        device = torch.device(device)
        cache = None
        sink: Callable[[int, int, np.ndarray, np.ndarray], None] | None = None
        if n * d * 4 <= cache_bytes:
            cache = torch.empty((n, d), dtype=torch.float32, device=device)

            def store(lo: int, hi: int, x: np.ndarray, inv: np.ndarray) -> None:
                # A new array: ``x`` may be a read-only view of a float32 memory map.
                cache[lo:hi] = torch.from_numpy(x * inv[:, None]).to(device)

            sink = store

        inv_norm = check_embeddings(embeddings, progress=progress, sink=sink)
        return cls(embeddings, inv_norm, device, cache)

    @property
    def cached(self) -> bool:
        return self._cache is not None

    def rows(self, index: np.ndarray) -> torch.Tensor:
        """Normalised float32 rows ``embeddings[index]`` as a ``(len(index), D)`` tensor."""
        index = np.array(index, dtype=np.int64)  # a writable copy: torch refuses read-only views
        if self._cache is not None:
            # index_select: several times faster than ``cache[index]`` on CPU.
            return torch.index_select(self._cache, 0, torch.from_numpy(index).to(self.device))
        # Read in ascending row order (friendly to memory maps), then restore the request order.
        perm = np.argsort(index, kind="stable")
        data = np.asarray(self.embeddings[index[perm]], dtype=np.float32)
        data *= self.inv_norm[index[perm], None]
        out = np.empty_like(data)
        out[perm] = data
        return torch.from_numpy(out).to(self.device)

    def block(self, lo: int, hi: int) -> torch.Tensor:
        """Normalised float32 rows ``lo:hi`` (a contiguous block)."""
        if self._cache is not None:
            return self._cache[lo:hi]
        data = np.asarray(self.embeddings[lo:hi], dtype=np.float32)
        data = data * self.inv_norm[lo:hi, None]
        return torch.from_numpy(data).to(self.device)
