"""Resumable, sharded embedding of many images (the engine behind ``hf-fiqa embed``).

Rows are cut into shards of ``shard_size`` (:class:`hf_fiqa.sharding.ShardedRun`, in ``OUT/.embed_shards/``):
each finished shard is an embeddings ``.npy`` and a rows ``.csv``, written atomically, the ``.csv`` last. Under
``accelerate launch`` / ``torchrun`` each process takes every ``world``-th shard; photos are decoded, detected
and aligned in DataLoader workers while the model runs. A run that is interrupted (crash, Ctrl-C, a killed
process, a pre-empted job) and started again with the same inputs and settings, with any number of
processes, computes only the missing shards. At the end the main process merges the shards into
``OUT/embeddings.npy`` + ``OUT/rows.csv`` (or ``OUT/embeddings.parquet``) and removes the shard folder.

Row ``i`` of the embeddings is row ``i`` of the table. Images that cannot be read, or where no face is found,
are kept as rows with ``ok = False``, an ``error`` reason and a NaN embedding: one bad file never stops a long
run, and the row alignment with the input list is preserved.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from tqdm.auto import tqdm

from ..sharding import OutputConflictError, ProcessGroup, ShardedRun, fingerprint, prepared_batches
from .inputs import InputItem
from .prepare import FacePreparer, PreparedFace, SafePreparer
from .store import FORMATS, format_float, output_files, read_rows_csv, write_embeddings, write_json, write_npy, write_rows_csv

SHARD_DIR = ".embed_shards"
MANIFEST = "embed_manifest.json"


@dataclass
class EmbedSummary:
    output_files: list[Path]
    n_rows: int
    n_ok: int
    failures: Counter = field(default_factory=Counter)
    resumed_from_row: int = 0  # rows found complete when this run started (0: a fresh run)
    already_complete: bool = False
    merged: bool = True  # False on the processes other than the main one: they only wrote shards


def item_fingerprint(items: Sequence[InputItem], settings: dict) -> str:
    return fingerprint((f"{item.path}\t{item.identity}" for item in items), settings)


def _shard_rows(chunk: Sequence[InputItem], start: int, prepared: list[PreparedFace], norms: np.ndarray) -> list[dict]:
    return [
        {
            "row": start + i,
            "path": item.path,
            "identity": item.identity,
            "ok": p.crop is not None,
            "error": p.error,
            "n_faces": "" if p.n_faces is None else p.n_faces,
            "det_score": format_float(p.det_score),
            "norm": format_float(float(norms[i])) if p.crop is not None else "",
        }
        for i, (item, p) in enumerate(zip(chunk, prepared))
    ]


def run_embedding(
    items: Sequence[InputItem],
    prepare: FacePreparer,
    embed_crops: Callable[[list[np.ndarray]], np.ndarray],
    embedding_size: int,
    out_dir: str | Path,
    settings: dict,
    *,
    shard_size: int = 1024,
    batch_size: int = 64,
    fmt: str = "npy",
    workers: int = 0,
    overwrite: bool = False,
    progress: bool = True,
    group: ProcessGroup | None = None,
) -> EmbedSummary:
    """Embed ``items`` into ``out_dir``, resuming a previous interrupted run with the same inputs.

    ``prepare`` reads/detects/aligns one item (in ``workers`` DataLoader processes; 0: in this one);
    ``embed_crops`` maps a list of crops to ``(n, embedding_size)`` embeddings and is called once per batch of
    ``batch_size`` rows. ``settings`` (model, flags) go into the fingerprint that decides whether earlier shards
    may be reused; the batch size, the shard size and the number of processes do not change the results.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    group = group or ProcessGroup()
    out_dir = Path(out_dir)
    finals = output_files(out_dir, fmt)
    key = item_fingerprint(items, {**settings, "embedding_size": embedding_size})
    n_rows = len(items)

    manifest_path = out_dir / MANIFEST
    if manifest_path.is_file() and not overwrite:
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("fingerprint") == key and manifest.get("format") == fmt and all(p.is_file() for p in finals):
            return EmbedSummary(finals, n_rows, int(manifest.get("n_ok", 0)), Counter(manifest.get("failures", {})),
                                n_rows, already_complete=True)
    existing = [p for p in finals + [manifest_path] if p.exists()]
    if existing and not overwrite:
        raise OutputConflictError(
            f"{out_dir} already holds results of another run ({', '.join(p.name for p in existing)}); "
            "pass --overwrite or choose another --output"
        )
    run = ShardedRun(out_dir / SHARD_DIR, n_rows, shard_size, key, suffixes=(".npy", ".csv"), group=group)
    run.open(overwrite=overwrite)
    if group.is_main:
        for stale in existing:  # overwrite: drop them now, so an interrupted new run can resume without --overwrite
            stale.unlink()
    resumed = run.rows_done()

    mine = run.mine()
    model_name = settings.get("model", "the model")
    bar = tqdm(total=sum(len(run.rows(s)) for s in mine), initial=run.rows_done(mine), unit="img",
               desc=" ".join(filter(None, ("embed", group.describe()))), disable=not progress)
    prepared: list[PreparedFace] = []
    embeddings: list[np.ndarray] = []
    for batch in prepared_batches(items, SafePreparer(prepare), run.batches(batch_size), workers=workers):
        part = np.full((len(batch.rows), embedding_size), np.nan, dtype=np.float32)
        good = [i for i, p in enumerate(batch.prepared) if p.crop is not None]
        if good:
            part[good] = embed_crops([batch.prepared[i].crop for i in good])
            for i in good:  # a NaN/inf embedding (broken weights) is an error row, never a success
                if not np.isfinite(part[i]).all():
                    part[i] = np.nan
                    p = batch.prepared[i]
                    batch.prepared[i] = PreparedFace(None, error=f"non-finite embedding from model {model_name} for "
                                                                 f"{items[batch.rows[i]].path}",
                                                     n_faces=p.n_faces, det_score=p.det_score)
        prepared.extend(batch.prepared)
        embeddings.append(part)
        bar.update(len(batch.rows))
        if batch.last:
            rows = run.rows(batch.shard)
            shard_embeddings = np.concatenate(embeddings)
            write_npy(run.path(batch.shard, ".npy"), shard_embeddings)
            write_rows_csv(run.path(batch.shard, ".csv"),
                           _shard_rows(items[rows.start:rows.stop], rows.start, prepared,
                                       np.linalg.norm(shard_embeddings, axis=1)))
            prepared, embeddings = [], []
    bar.close()
    run.wait_for_all()
    if not group.is_main:
        return EmbedSummary(finals, n_rows, 0, resumed_from_row=resumed, merged=False)

    # Merge. Shards written by this or an earlier run, by any process, are read back alike.
    parts = [np.load(run.path(s, ".npy")) for s in range(run.n_shards)]
    matrix = np.concatenate(parts) if parts else np.zeros((0, embedding_size), np.float32)
    rows = [r for s in range(run.n_shards) for r in read_rows_csv(run.path(s, ".csv"))]
    if len(rows) != n_rows or matrix.shape != (n_rows, embedding_size):
        raise RuntimeError(f"{run.folder}: shards hold {len(rows)} rows / {matrix.shape}, expected {n_rows}; "
                           "rerun with --overwrite")
    failures = Counter(r["error"] for r in rows if r["ok"] != "True")
    n_ok = sum(r["ok"] == "True" for r in rows)
    write_embeddings(out_dir, fmt, rows, matrix)
    write_json(manifest_path, {"fingerprint": key, "format": fmt, "n_rows": n_rows, "n_ok": n_ok,
                                "failures": dict(failures), "settings": settings})
    run.remove()
    return EmbedSummary(finals, n_rows, n_ok, failures, resumed_from_row=resumed)
