"""The labelling engine: raw W-1 per (row, repetition) for a range of whole identities.

Used by :mod:`hf_fiqa.labels.sdd`, which documents what is computed and why it is built this
way. Matrix products (identity Gram matrices, similarities to negative pools or to all rows) run
on the torch device; sampling, gathers and W-1 run in NumPy on the host.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .embeddings import EmbeddingSource
from .grouping import IdentityIndex
from .sampling import (
    STREAM_NEGATIVES,
    STREAM_NEGATIVES_DIRECT,
    STREAM_POOL,
    STREAM_POSITIVES,
    floyd_sample,
    group_rng,
)
from .wasserstein import wasserstein_1d_equal, wasserstein_1d_padded

__all__ = ["BLOCK_ROWS", "ELEMENT_BUDGET", "GRAM_MAX_ROWS", "ShardWorker", "Chunk"]

#: Rows per sampling block: the unit (in identity-sorted order) that owns the random draws of a
#: repetition and shares one pool of negative candidates. Part of the sampling definition.
BLOCK_ROWS = 1024
#: Upper bound on elements of the temporary (rows x samples) arrays of the ragged W-1 path and
#: of the "all negatives" similarity blocks (~50 bytes each in flight).
ELEMENT_BUDGET = 1 << 22
#: Identities up to this many images get a precomputed Gram matrix (n^2 floats) shared by all
#: repetitions; larger ones compute their rows' similarities on demand.
GRAM_MAX_ROWS = 4096
#: Bound on rows x num_neg x dim floats gathered at once for directly drawn negatives.
DIRECT_GATHER_ELEMENTS = 1 << 24



# --------------------------------------------------------------------------------------------
# Per-chunk state: a range of whole identities and their Gram matrices
# --------------------------------------------------------------------------------------------


@dataclass
class Chunk:
    lo: int  # first sorted position
    hi: int
    rows: np.ndarray  # input row index per local row
    code: np.ndarray  # identity code per local row
    size: np.ndarray  # identity size per local row
    start: np.ndarray  # identity's first sorted position per local row
    self_pos: np.ndarray  # position of the row within its identity
    x: torch.Tensor  # (b, D) normalised float32 on the device
    gram: np.ndarray  # flat per-row Gram rows within the identity (float32, host)
    gram_offset: np.ndarray  # (b,) offset of the row's Gram row in ``gram``
    x_blocks: torch.Tensor | None = None  # rows laid out by sampling block, built on first use

    @property
    def b(self) -> int:
        return self.hi - self.lo


def _take_rows(x: torch.Tensor, local: np.ndarray) -> torch.Tensor:
    """``x[local]`` via index_select (several times faster than advanced indexing on CPU)."""
    return torch.index_select(x, 0, torch.from_numpy(np.ascontiguousarray(local, dtype=np.int64)).to(x.device))


def _identity_gram(x: torch.Tensor, first: np.ndarray, sizes: np.ndarray, self_pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gram matrices of the identities starting at local rows ``first`` with ``sizes`` rows.

    Identities are batched by size rounded up to a multiple of 8 so that one ``bmm`` serves many
    of them; the padded ``(k, s, s)`` results are stored back to back in one flat array, and row
    ``r`` (of an identity of size ``n``) finds its similarities to the identity's rows at
    ``gram[offset[r] : offset[r] + n]`` (the padding is never read).
    """
    device = x.device
    offset = np.zeros(self_pos.shape[0], dtype=np.int64)
    padded = (sizes + 7) // 8 * 8
    parts: list[torch.Tensor] = []
    base = 0
    for s in np.unique(padded):
        s = int(s)
        sel = np.flatnonzero(padded == s)
        f, n = first[sel], sizes[sel]
        # Per-row offsets of this bucket's members (identity i, row p) -> base + i*s*s + p*s.
        members = np.repeat(f, n) + (np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n))
        ident = np.repeat(np.arange(sel.shape[0]), n)
        offset[members] = base + ident * (s * s) + self_pos[members] * s
        idx = f[:, None] + np.minimum(np.arange(s)[None, :], n[:, None] - 1)  # padding repeats a row
        xb = torch.index_select(x, 0, torch.from_numpy(idx.reshape(-1)).to(device)).view(sel.shape[0], s, -1)
        parts.append(torch.bmm(xb, xb.transpose(1, 2)).reshape(-1))
        base += sel.shape[0] * s * s
    gram = np.empty(base, dtype=np.float32)
    at = 0
    for part in parts:  # copied piecewise to the host (no device-side concatenation)
        gram[at : at + part.shape[0]] = part.cpu().numpy()
        at += part.shape[0]
    return gram, offset


class ShardWorker:
    """Computes raw W per (row, repetition) for the identities of one process.

    Matrix products (identity Gram matrices, similarities to negative pools or to all rows) run
    on the torch device; sampling, gathers and W-1 run in NumPy on the host.
    """

    def __init__(
        self,
        source: EmbeddingSource,
        index: IdentityIndex,
        pos_k: int | None,
        neg_k: int | None,
        repetitions: int,
        seed: int,
        pool_size: int | None,
    ):
        self.source = source
        self.index = index
        self.pos_k = pos_k
        self.neg_k = neg_k
        self.repetitions = repetitions
        self.seed = seed
        self.n = index.num_rows
        self.pool_size = None if pool_size is None else min(pool_size, self.n)
        self.device = source.device
        self.codes_sorted = index.codes[index.order]
        self.pool_fallback_draws = 0

    # ---------------------------------------------------------------- chunk preparation
    def load_chunk(self, lo: int, hi: int) -> Chunk:
        ix = self.index
        rows = ix.order[lo:hi]
        code = self.codes_sorted[lo:hi]
        size = ix.sizes[code]
        start = ix.starts[code]
        self_pos = np.arange(lo, hi, dtype=np.int64) - start
        x = self.source.rows(rows)
        # Identities too large for a Gram matrix get their positives on demand instead.
        first = np.flatnonzero((self_pos == 0) & (size >= 2) & (size <= GRAM_MAX_ROWS))
        gram, offset = _identity_gram(x, first, size[first], self_pos)
        return Chunk(lo, hi, rows, code, size, start, self_pos, x, gram, offset)

    def _blocks(self, chunk: Chunk) -> range:
        return range(chunk.lo // BLOCK_ROWS, (chunk.hi - 1) // BLOCK_ROWS + 1)

    def _block_draws(self, chunk: Chunk, rep: int, stream: int, k: int, need: np.ndarray) -> np.ndarray:
        """(b, k) uniforms for the chunk's rows. Every sampling block draws all its BLOCK_ROWS
        rows' numbers, whichever chunk or process asks, so each row always gets the same ones."""
        out = np.zeros((chunk.b, k), dtype=np.float64)
        for blk in self._blocks(chunk):
            a, e = max(chunk.lo, blk * BLOCK_ROWS), min(chunk.hi, (blk + 1) * BLOCK_ROWS)
            if need[a - chunk.lo : e - chunk.lo].any():
                u = group_rng(self.seed, rep, blk, stream).random((BLOCK_ROWS, k))
                out[a - chunk.lo : e - chunk.lo] = u[a - blk * BLOCK_ROWS : e - blk * BLOCK_ROWS]
        return out

    # ---------------------------------------------------------------- positives
    def _positive_picks(self, chunk: Chunk, rep: int, active: np.ndarray) -> np.ndarray | None:
        """(b, pos_k) 'other image' indices for rows with more than pos_k others, else None."""
        if self.pos_k is None:
            return None
        others = chunk.size - 1
        sampled = active & (others > self.pos_k)
        if not sampled.any():
            return None
        u = self._block_draws(chunk, rep, STREAM_POSITIVES, self.pos_k, sampled)
        picks = np.zeros((chunk.b, self.pos_k), dtype=np.int64)
        picks[sampled] = floyd_sample(u[sampled], others[sampled])
        return picks

    def _positive_values(self, chunk: Chunk, local: np.ndarray, picks: np.ndarray | None, width: int) -> np.ndarray:
        """Positive similarities of local rows ``local``, ``(r, width)`` float32, +inf padded."""
        others = chunk.size[local] - 1
        count = others if self.pos_k is None else np.minimum(others, self.pos_k)
        o = np.broadcast_to(np.arange(width, dtype=np.int64), (local.shape[0], width)).copy()
        valid = o < count[:, None]  # by column: the first ``count`` columns are real samples
        if picks is not None:
            sampled = others > self.pos_k
            if sampled.any():  # then width == pos_k
                o[sampled] = picks[local[sampled]]
        o[~valid] = 0
        o += o >= chunk.self_pos[local, None]  # skip the row itself: now a member index
        big = chunk.size[local] > GRAM_MAX_ROWS
        if not big.any():
            vals = chunk.gram[o + chunk.gram_offset[local, None]]
        else:
            vals = np.empty(o.shape, dtype=np.float32)
            small = np.flatnonzero(~big)
            vals[small] = chunk.gram[o[small] + chunk.gram_offset[local[small], None]]
            self._big_identity_values(chunk, local, np.flatnonzero(big), o, vals)
        vals[~valid] = np.inf
        return vals

    def _big_identity_values(self, chunk: Chunk, local: np.ndarray, which: np.ndarray, member: np.ndarray, out: np.ndarray) -> None:
        """Positives of rows whose identity is too large for a Gram matrix, computed on demand:
        similarities to the identity's rows for a few rows at a time, then the picked members."""
        for start in np.unique(chunk.start[local[which]]):
            sel = which[chunk.start[local[which]] == start]
            a = int(start) - chunk.lo
            ident_x = chunk.x[a : a + int(chunk.size[local[sel[0]]])]
            step = max(1, ELEMENT_BUDGET // ident_x.shape[0])
            for i in range(0, sel.shape[0], step):
                part = sel[i : i + step]
                sims = (_take_rows(chunk.x, local[part]) @ ident_x.T).cpu().numpy()
                out[part] = np.take_along_axis(sims, member[part], axis=1)

    # ---------------------------------------------------------------- negatives
    def _direct_negatives(self, chunk: Chunk, rep: int, local: np.ndarray) -> np.ndarray:
        """Negatives drawn independently per row from all other-identity rows, ``(r, neg_k)``."""
        k = self.neg_k
        need = np.zeros(chunk.b, dtype=bool)
        need[local] = True
        u = self._block_draws(chunk, rep, STREAM_NEGATIVES_DIRECT, k, need)[local]
        population = self.n - chunk.size[local]
        full = population >= k
        picks = np.broadcast_to(np.arange(k, dtype=np.int64), (local.shape[0], k)).copy()
        if full.any():
            picks[full] = floyd_sample(u[full], population[full])
        valid = picks < population[:, None]
        picks[~valid] = 0
        # Index among other-identity rows -> sorted position (skip the identity's block).
        pos = picks + (picks >= chunk.start[local, None]) * chunk.size[local, None]
        rows = self.index.order[pos]
        out = np.empty((local.shape[0], k), dtype=np.float32)
        step = max(1, DIRECT_GATHER_ELEMENTS // (k * self.source.dim))
        for a in range(0, local.shape[0], step):
            e = min(a + step, local.shape[0])
            emb = self.source.rows(rows[a:e].reshape(-1)).view(e - a, k, -1)
            xr = _take_rows(chunk.x, local[a:e])
            out[a:e] = torch.bmm(emb, xr[:, :, None])[:, :, 0].cpu().numpy()
        out[~valid] = np.inf
        return out

    def _pool_similarities(self, chunk: Chunk, rep: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Similarities of every chunk row to its sampling block's pool of this repetition.

        Returns ``(sims (b, M), pool_codes (blocks, M), block of each row)``. One batched matrix
        product for all blocks of the chunk (pools differ per block).
        """
        m, n = self.pool_size, self.n
        if m == n:  # tiny dataset: every block's pool is the whole dataset
            pool_x = self.source.rows(np.arange(n))
            sims = (chunk.x @ pool_x.T).cpu().numpy()
            return sims, self.index.codes[None, :], np.zeros(chunk.b, dtype=np.int64)
        blocks = self._blocks(chunk)
        pools = np.stack(
            [group_rng(self.seed, rep, blk, STREAM_POOL).choice(n, size=m, replace=False, shuffle=False) for blk in blocks]
        ).astype(np.int64)
        pool_x = self.source.rows(pools.reshape(-1)).view(len(blocks), m, -1)
        if chunk.x_blocks is None:
            first = blocks.start * BLOCK_ROWS
            local = np.clip(np.arange(first, blocks.stop * BLOCK_ROWS) - chunk.lo, 0, chunk.b - 1)
            chunk.x_blocks = _take_rows(chunk.x, local).view(len(blocks), BLOCK_ROWS, -1)
        sims = torch.bmm(chunk.x_blocks, pool_x.transpose(1, 2)).view(-1, m)
        skip = chunk.lo - blocks.start * BLOCK_ROWS
        sims = sims[skip : skip + chunk.b].cpu().numpy()
        row_block = np.arange(chunk.lo, chunk.hi) // BLOCK_ROWS - blocks.start
        return sims, self.index.codes[pools], row_block

    def _pool_negatives(self, chunk: Chunk, rep: int, active: np.ndarray) -> np.ndarray:
        """Negatives of every chunk row, ``(b, neg_k)`` float32 padded with +inf, from the pools."""
        k, m = self.neg_k, self.pool_size
        sims, pool_codes, row_block = self._pool_similarities(chunk, rep)
        # Own-identity members of each row's pool: sort each pool by code, then one searchsorted
        # over (block, code) keys finds every row's own members (their slots come out ascending).
        sorter = np.argsort(pool_codes, axis=1, kind="stable")
        keys = np.take_along_axis(pool_codes, sorter, axis=1)
        keys = keys + np.arange(keys.shape[0])[:, None] * self.index.num_identities
        row_key = row_block * self.index.num_identities + chunk.code
        left = np.searchsorted(keys.reshape(-1), row_key, side="left")
        own = np.searchsorted(keys.reshape(-1), row_key, side="right") - left
        sorter = sorter.reshape(-1)
        eligible = m - own
        negs = np.full((chunk.b, k), np.inf, dtype=np.float32)

        # Rows with at least k eligible pool members: k distinct eligible slots via Floyd, mapped
        # past the row's own-identity slots (ascending, so one pass of increments is exact).
        draw = active & (eligible >= k)
        if draw.any():
            u = self._block_draws(chunk, rep, STREAM_NEGATIVES, k, draw)
            rows = np.flatnonzero(draw)
            slot = floyd_sample(u[rows], eligible[rows])
            for t in range(int(own[rows].max(initial=0))):
                has = own[rows] > t
                own_slot = sorter[np.minimum(left[rows] + t, sorter.shape[0] - 1)]
                slot += has[:, None] & (slot >= own_slot[:, None])
            slot += rows[:, None] * m  # flat index into sims (no (rows, M) copy)
            negs[rows] = sims.reshape(-1)[slot]

        short = active & ~draw
        if short.any():
            rows = np.flatnonzero(short)
            if m == self.n:
                # The pool is the whole dataset: take every other-identity row (fewer than k).
                vals = np.where(pool_codes[0][None, :] == chunk.code[rows, None], np.inf, sims[rows])
                vals = np.sort(vals, axis=1)[:, : min(k, m)]
                negs[rows, : vals.shape[1]] = vals
            else:
                # The pool held too few other-identity rows (a very large identity, or bad luck):
                # draw these rows' negatives from the whole dataset instead.
                self.pool_fallback_draws += int(rows.shape[0])
                negs[rows] = self._direct_negatives(chunk, rep, rows)
        return negs

    def _all_negative_block(self, chunk: Chunk, local: np.ndarray) -> np.ndarray:
        """Similarities of local rows to every row of the dataset, own identity set to +inf."""
        xr = _take_rows(chunk.x, local)
        if self.source.cached:
            sims = (xr @ self.source.block(0, self.n).T).cpu().numpy()
        else:
            sims = np.empty((local.shape[0], self.n), dtype=np.float32)
            step = 65536
            for a in range(0, self.n, step):
                e = min(a + step, self.n)
                sims[:, a:e] = (xr @ self.source.block(a, e).T).cpu().numpy()
        sims[self.index.codes[None, :] == chunk.code[local, None]] = np.inf
        return sims

    # ---------------------------------------------------------------- W per chunk
    def _ragged_batches(self, chunk: Chunk, local: np.ndarray, extra: int) -> list[np.ndarray]:
        """Split rows into batches whose padded (rows x samples) arrays fit ELEMENT_BUDGET."""
        count = chunk.size[local] - 1
        if self.pos_k is not None:
            count = np.minimum(count, self.pos_k)
        order = np.argsort(count, kind="stable")
        local, count = local[order], count[order]
        batches, a = [], 0
        while a < local.shape[0]:
            # Rows sorted by width: extend while rows * (widest + extra) stays within budget.
            cost = np.arange(1, local.shape[0] - a + 1) * (count[a:] + extra)
            e = a + max(1, int(np.searchsorted(cost, ELEMENT_BUDGET, side="right")))
            batches.append(local[a:e])
            a = e
        return batches

    def _width(self, chunk: Chunk, batch: np.ndarray) -> int:
        widest = int((chunk.size[batch] - 1).max())
        return widest if self.pos_k is None else min(widest, self.pos_k)

    def chunk_raw(self, chunk: Chunk) -> tuple[np.ndarray, np.ndarray]:
        """Raw W ``(r, reps)`` of the chunk's labelled rows, and those rows' local indices."""
        active = chunk.size >= 2
        labelled = np.flatnonzero(active)
        raw = np.zeros((labelled.shape[0], self.repetitions), dtype=np.float64)
        where = np.full(chunk.b, -1, dtype=np.int64)
        where[labelled] = np.arange(labelled.shape[0])
        if labelled.shape[0] == 0:
            return labelled, raw
        if self.neg_k is None:
            self._chunk_all_negatives(chunk, labelled, where, raw)
            return labelled, raw
        others = chunk.size - 1
        # Every path draws k negatives when the dataset has k other-identity rows.
        full_neg = (self.n - chunk.size) >= self.neg_k
        if self.pos_k is not None and self.pos_k == self.neg_k:
            fast = active & full_neg & (others >= self.pos_k)  # equal sizes: sorted differences
        else:
            fast = np.zeros_like(active)
        fast_rows = np.flatnonzero(fast)
        slow_rows = np.flatnonzero(active & ~fast)
        slow_batches = self._ragged_batches(chunk, slow_rows, self.neg_k) if slow_rows.shape[0] else []
        for rep in range(self.repetitions):
            picks = self._positive_picks(chunk, rep, active)
            if self.pool_size is None:
                negs = np.full((chunk.b, self.neg_k), np.inf, dtype=np.float32)
                negs[labelled] = self._direct_negatives(chunk, rep, labelled)
            else:
                negs = self._pool_negatives(chunk, rep, active)
            if fast_rows.shape[0]:
                pos = self._positive_values(chunk, fast_rows, picks, self.pos_k)
                raw[where[fast_rows], rep] = wasserstein_1d_equal(pos, negs[fast_rows])
            for batch in slow_batches:
                pos = self._positive_values(chunk, batch, picks, self._width(chunk, batch))
                raw[where[batch], rep] = wasserstein_1d_padded(pos, negs[batch])
        return labelled, raw

    def _chunk_all_negatives(self, chunk: Chunk, labelled: np.ndarray, where: np.ndarray, raw: np.ndarray) -> None:
        """W against all other-identity rows; sorts (rows x N), so rows go in small blocks."""
        active = chunk.size >= 2
        picks = [self._positive_picks(chunk, rep, active) for rep in range(self.repetitions)]
        for batch in self._ragged_batches(chunk, labelled, self.n):
            negs = self._all_negative_block(chunk, batch)
            width = self._width(chunk, batch)
            for rep in range(self.repetitions):
                pos = self._positive_values(chunk, batch, picks[rep], width)
                raw[where[batch], rep] = wasserstein_1d_padded(pos, negs)
