"""SDD-FIQA quality pseudo-labels at MS-Celeb-1M scale.

What is computed (Ou et al., CVPR 2021; see REFERENCE.md): for every image x of identity c,

* Pos(x): cosine similarities between x and up to ``num_pos`` random *other* images of c
  (drawn without replacement; all of them when c has ``num_pos`` or fewer other images);
* Neg(x): cosine similarities between x and ``num_neg`` random images of other identities
  (distinct images, uniform over all rows of other identities);
* W(x) = Wasserstein-1 distance between the empirical distributions Pos(x) and Neg(x), exactly
  as ``scipy.stats.wasserstein_distance(Pos, Neg)``;
* repeated ``repetitions`` times with fresh draws. In each repetition the W values of the whole
  dataset are min-max normalised to [0, 100]; the label ``quality`` is the mean of those
  normalised values. ``wasserstein`` is the raw mean W over the repetitions.

Identities with a single image have no positives and get no label (they still serve as
negatives for others). ``num_pos="all"`` / ``num_neg="all"`` select the deterministic variant:
all other images of the identity / all images of other identities (``repetitions`` is then
ignored when both are "all"). "all" negatives cost O(N^2) similarities and sorts: fine for
tens of thousands of rows, not for MS1M.

How it is made fast (the reference loops over images in Python, scans all rows per identity and
calls scipy per image):

* rows are grouped by identity once with a stable sort (:mod:`hf_fiqa.labels.grouping`);
* positives come from each identity's Gram matrix (batched ``bmm`` per size bucket), computed
  once per chunk and reused by all repetitions;
* negatives come from a *pool*: rows in identity-sorted order form sampling blocks of
  :data:`BLOCK_ROWS` rows; in each repetition every block draws ``neg_pool_size`` distinct
  random rows of the dataset, the block's similarities to its pool are one (batched) matrix
  product, and every row then picks its ``num_neg`` distinct negatives uniformly among the pool
  members of other identities. Marginally each row's negatives are a uniform random set of
  distinct other-identity images, as in the reference; rows of one block share pool members, so
  their W values are mildly correlated within a repetition. On 100k synthetic MS1M-like rows the
  labels from pools of 256 (and even 64) correlated with an independent exact run exactly as
  well as two exact runs with different seeds did (Pearson 0.9965 in all cases).
  ``neg_pool_size=None`` draws every row's negatives independently from the whole dataset
  (exact reference sampling; ~10x slower: it gathers 24 random rows per image and repetition).
  A row whose block pool holds fewer than ``num_neg`` rows of other identities (a giant
  identity) falls back to that exact draw (counted in the report);
* W-1 for a batch of rows at once, with NumPy row sorts (:mod:`hf_fiqa.labels.wasserstein`);
* matrix products run on the torch device; sampling and W-1 run on the host.

Determinism: every draw comes from a generator keyed by (seed, repetition, sampling block,
stream) (:mod:`hf_fiqa.labels.sampling`), and a block draws all its rows' numbers whichever
chunk or process handles it. So the samples do not depend on ``chunk_size``, on the number of
processes or on the device; W values then agree to float32 rounding (matrix-product kernels
differ with the batch shapes and devices: ~1e-7 seen on CPU), not necessarily bitwise.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from .embeddings import EmbeddingError, EmbeddingSource, RowSubset
from .grouping import IdentityIndex, chunk_ranges, group_identities, shard_range
from .shard import BLOCK_ROWS, ShardWorker

__all__ = [
    "PseudoLabelReport",
    "sdd_pseudo_labels",
    "sdd_raw_wasserstein",
    "normalise_repetitions",
    "EmbeddingError",
    "BLOCK_ROWS",
]


@dataclass
class PseudoLabelReport:
    """What a pseudo-labelling run did; ``to_dict()`` is JSON-ready."""

    rows: int
    identities: int
    labelled_rows: int
    labelled_identities: int
    skipped_singleton_identities: int
    skipped_singleton_rows: int
    rows_with_fewer_positives: int
    rows_with_fewer_negatives: int
    pool_fallback_draws: int
    degenerate_repetitions: int
    num_pos: int | str
    num_neg: int | str
    repetitions: int
    neg_pool_size: int | None
    seed: int
    device: str
    world_size: int
    embedding_dim: int
    embedding_dtype: str
    cached_on_device: bool
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _parse_count(value: int | str, name: str) -> int | None:
    """``"all"`` -> None (every candidate), a positive int -> itself."""
    if isinstance(value, str):
        if value.strip().lower() == "all":
            return None
        try:
            value = int(value)
        except ValueError:
            raise ValueError(f"{name} must be a positive integer or 'all', got {value!r}") from None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer or 'all', got {value!r}")
    return int(value)


def normalise_repetitions(raw: np.ndarray) -> tuple[np.ndarray, int]:
    """Min-max normalise each column (repetition) of ``raw`` to [0, 100] and average the columns.

    A repetition in which all W values are equal carries no ranking information; its normalised
    values are set to 0. Returns (quality per row, number of such degenerate repetitions).
    """
    raw = np.asarray(raw, dtype=np.float64)
    if raw.shape[0] == 0:
        return np.zeros(0), 0
    lo = raw.min(axis=0)
    span = raw.max(axis=0) - lo
    degenerate = span <= 0
    scaled = (raw - lo) / np.where(degenerate, 1.0, span) * 100.0
    scaled[:, degenerate] = 0.0
    return scaled.mean(axis=1), int(degenerate.sum())


# --------------------------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------------------------


def _check_shapes(embeddings: Any, identities: Any) -> None:
    """(rows, dim) embeddings and one identity per row, before any work is done."""
    shape = getattr(embeddings, "shape", None)
    if shape is None or len(shape) != 2:
        raise EmbeddingError(f"embeddings must be a 2-D (rows, dim) array, got shape {shape}")
    if not hasattr(identities, "__len__"):
        raise ValueError(f"identities must be a 1-D array, got {type(identities).__name__}")
    n_emb, n_ids = int(shape[0]), len(identities)
    if n_emb != n_ids:
        raise ValueError(f"length mismatch: {n_emb} embedding rows but {n_ids} identities")


@dataclass
class _Setup:
    pos_k: int | None
    neg_k: int | None
    repetitions: int
    seed: int
    chunk_size: int
    neg_pool_size: int | None
    index: IdentityIndex
    source: EmbeddingSource


def _setup(
    embeddings: Any,
    identities: Any,
    num_pos: int | str,
    num_neg: int | str,
    repetitions: int,
    seed: int,
    chunk_size: int,
    neg_pool_size: int | None,
    device: torch.device,
    cache_bytes: int,
    progress_cb=None,
    on_index=None,
) -> _Setup:
    """Check every argument, group identities and validate embeddings (raises on bad input)."""
    pos_k = _parse_count(num_pos, "num_pos")
    neg_k = _parse_count(num_neg, "num_neg")
    if isinstance(repetitions, bool) or not isinstance(repetitions, (int, np.integer)) or repetitions < 1:
        raise ValueError(f"repetitions must be a positive integer, got {repetitions!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    if neg_pool_size is not None and (not isinstance(neg_pool_size, (int, np.integer)) or neg_pool_size < 1):
        raise ValueError(f"neg_pool_size must be a positive integer or None, got {neg_pool_size!r}")
    if neg_pool_size is not None and neg_k is not None and neg_pool_size < neg_k:
        raise ValueError(f"neg_pool_size ({neg_pool_size}) must be at least num_neg ({neg_k})")
    _check_shapes(embeddings, identities)
    index = group_identities(identities)
    if index.num_identities < 2:
        raise ValueError(f"need at least two identities to draw negatives, got {index.num_identities}")
    if on_index is not None:
        on_index(index)
    source = EmbeddingSource.open(embeddings, device, cache_bytes=cache_bytes, progress=progress_cb)
    reps = 1 if pos_k is None and neg_k is None else int(repetitions)
    return _Setup(pos_k, neg_k, reps, int(seed), int(chunk_size), neg_pool_size, index, source)


def _run_shard(setup: _Setup, rank: int, world_size: int, bar=None) -> tuple[np.ndarray, np.ndarray, int]:
    """Raw W of the shard's labelled rows: (input rows, raw (rows, reps), pool fallback draws)."""
    index = setup.index
    worker = ShardWorker(setup.source, index, setup.pos_k, setup.neg_k, setup.repetitions, setup.seed, setup.neg_pool_size)
    lo, hi = shard_range(index, rank, world_size)
    rows_parts, raw_parts = [], []
    scale = index.num_rows / max(hi - lo, 1)  # the bar counts N rows per pass, whatever the shard
    with torch.inference_mode():
        for c0, c1 in chunk_ranges(index, lo, hi, setup.chunk_size):
            chunk = worker.load_chunk(c0, c1)
            local, raw = worker.chunk_raw(chunk)
            rows_parts.append(chunk.rows[local])
            raw_parts.append(raw)
            if bar is not None:
                bar.update((c1 - c0) * scale)
            del chunk
    rows = np.concatenate(rows_parts) if rows_parts else np.zeros(0, dtype=np.int64)
    raw = np.concatenate(raw_parts) if raw_parts else np.zeros((0, setup.repetitions))
    return rows, raw, worker.pool_fallback_draws


def sdd_raw_wasserstein(
    embeddings: np.ndarray,
    identities: np.ndarray,
    num_pos: int | str = 24,
    num_neg: int | str = 24,
    repetitions: int = 12,
    seed: int = 0,
    device: str | torch.device = "cpu",
    chunk_size: int = 32768,
    neg_pool_size: int | None = 256,
    cache_bytes: int = 2**31,
    rank: int = 0,
    world_size: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Raw W-1 per (row, repetition) for shard ``rank`` of ``world_size``, unnormalised.

    The building block for distributed runs outside accelerate (e.g. one job per shard writing
    its arrays): concatenate every shard's ``(rows, raw)``, then :func:`normalise_repetitions`
    (normalisation must see the whole dataset). Shards hold whole identities and the draws are
    keyed per sampling block, so the union of the shards equals the single-process result.
    Arguments as :func:`sdd_pseudo_labels`; returns ``(rows, raw)`` sorted by row.
    """
    setup = _setup(embeddings, identities, num_pos, num_neg, repetitions, seed, chunk_size, neg_pool_size,
                   torch.device(device), cache_bytes)
    rows, raw, _ = _run_shard(setup, rank, world_size)
    order = np.argsort(rows, kind="stable")
    return rows[order], raw[order]


def sdd_pseudo_labels(
    embeddings: np.ndarray,
    identities: np.ndarray,
    num_pos: int | str = 24,
    num_neg: int | str = 24,
    repetitions: int = 12,
    seed: int = 0,
    device: str | torch.device = "cpu",
    chunk_size: int = 32768,
    accelerator: Any = None,
    neg_pool_size: int | None = 256,
    progress: bool = False,
    cache_bytes: int = 2**31,
    rows: np.ndarray | None = None,
):
    """SDD-FIQA pseudo-labels for every image whose identity has at least two images.

    Args:
        embeddings: ``(N, D)`` float16/float32/float64 recognition embeddings (normalised here),
            e.g. ``np.load(path, mmap_mode="r")``; read in chunks (see ``cache_bytes``).
        identities: ``(N,)`` integer or unicode-string identity of each row.
        num_pos, num_neg: samples per image, or ``"all"`` for the deterministic all-pairs variant.
        repetitions: independent draws averaged into the label (ignored when both are "all").
        seed: non-negative seed; same seed, same labels (whatever ``chunk_size`` or process count).
        device: torch device for the matrix products (ignored when ``accelerator`` is given).
        chunk_size: rows per processing chunk (memory knob; results equal to float32 rounding).
        accelerator: an ``accelerate.Accelerator``; each process takes a contiguous shard of
            whole identities, raw W values are gathered, then normalised globally. Every process
            returns the full result.
        neg_pool_size: negative candidates shared by a sampling block per repetition (see the
            module docstring); ``None`` samples every row's negatives independently.
        progress: show a tqdm bar (main process only): one pass validating, one labelling.
        cache_bytes: keep the normalised float32 matrix on the device when it takes at most this
            many bytes (speed; 0 never caches). Larger inputs are streamed in chunks.
        rows: optional indices of the embedding rows to use (e.g. only rows where a face was
            found; the others may hold NaN). ``identities`` then has one entry per selected row,
            and the output ``row`` column holds these indices. The matrix is not copied.

    Returns:
        ``(frame, report)``: a pandas DataFrame with columns ``row`` (index into ``embeddings``),
        ``identity``, ``wasserstein`` (raw mean W-1 over repetitions) and ``quality`` (mean of
        per-repetition min-max normalised W, in [0, 100]), sorted by ``row``; and a
        :class:`PseudoLabelReport`.

    Raises:
        ValueError (:class:`EmbeddingError` for bad rows): length mismatch, NaN/inf or zero-norm
        embeddings (naming the first rows), bad identity dtype, fewer than two identities.
    """
    import pandas as pd

    t0 = time.perf_counter()
    if rows is not None:
        if getattr(embeddings, "shape", None) is None or len(embeddings.shape) != 2:
            raise EmbeddingError(f"embeddings must be a 2-D (rows, dim) array, got shape {getattr(embeddings, 'shape', None)}")
        embeddings = RowSubset(embeddings, rows)
    if accelerator is not None:
        rank, world, dev = accelerator.process_index, accelerator.num_processes, accelerator.device
    else:
        rank, world, dev = 0, 1, torch.device(device)
    bar = None

    def open_bar(index: IdentityIndex) -> None:
        nonlocal bar
        if progress and rank == 0:
            from tqdm.auto import tqdm

            bar = tqdm(total=2 * index.num_rows, desc="pseudo-labels", unit="row", unit_scale=True)

    def tick(n: int) -> None:
        if bar is not None:
            bar.update(n)

    try:
        setup = _setup(embeddings, identities, num_pos, num_neg, repetitions, seed, chunk_size, neg_pool_size,
                       dev, cache_bytes, progress_cb=tick, on_index=open_bar)
        done, raw, fallback = _run_shard(setup, rank, world, bar)
    finally:
        if bar is not None:
            bar.close()

    if world > 1:
        from accelerate.utils import gather_object

        parts = gather_object([(done, raw, fallback)])
        done = np.concatenate([p[0] for p in parts])
        raw = np.concatenate([p[1] for p in parts])
        fallback = int(sum(p[2] for p in parts))

    order = np.argsort(done, kind="stable")
    done, raw = done[order], raw[order]
    quality, degenerate = normalise_repetitions(raw)
    index = setup.index
    codes = index.codes[done]
    frame = pd.DataFrame(
        {
            "row": (embeddings.name(done) if isinstance(embeddings, RowSubset) else done).astype(np.int64),
            "identity": index.labels[codes],
            "wasserstein": raw.mean(axis=1),
            "quality": quality,
        }
    )
    singles = index.sizes == 1
    labelled_sizes = index.sizes[codes]
    pos_k, neg_k = setup.pos_k, setup.neg_k
    report = PseudoLabelReport(
        rows=index.num_rows,
        identities=index.num_identities,
        labelled_rows=int(done.shape[0]),
        labelled_identities=int((~singles).sum()),
        skipped_singleton_identities=int(singles.sum()),
        skipped_singleton_rows=int(singles.sum()),
        rows_with_fewer_positives=0 if pos_k is None else int((labelled_sizes - 1 < pos_k).sum()),
        rows_with_fewer_negatives=0 if neg_k is None else int((index.num_rows - labelled_sizes < neg_k).sum()),
        pool_fallback_draws=fallback,
        degenerate_repetitions=degenerate,
        num_pos="all" if pos_k is None else pos_k,
        num_neg="all" if neg_k is None else neg_k,
        repetitions=setup.repetitions,
        neg_pool_size=None if neg_k is None else setup.neg_pool_size,
        seed=setup.seed,
        device=str(dev),
        world_size=world,
        embedding_dim=int(embeddings.shape[1]),
        embedding_dtype=str(np.dtype(embeddings.dtype)),
        cached_on_device=setup.source.cached,
        seconds=round(time.perf_counter() - t0, 3),
    )
    return frame, report
