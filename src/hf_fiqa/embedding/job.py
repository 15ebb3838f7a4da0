"""Resumable, sharded embedding of many images (the engine behind ``hf-fiqa embed``).

Rows are processed in shards of ``shard_size``. Each finished shard is written to
``OUT/.embed_shards/`` (embeddings ``.npy`` + rows ``.csv``, each written to a temporary name and
renamed, so a shard is either complete or absent) and then counted in ``progress.json``. A run
that is interrupted (crash, Ctrl-C, pre-empted job) restarts from the first shard not counted,
provided the input list and settings are the same: a fingerprint of both is stored and checked
(with another shard size the unfinished run starts over; the results would be the same).
At the end the shards are merged into ``OUT/embeddings.npy`` + ``OUT/rows.csv`` (or
``OUT/embeddings.parquet``) and the shard folder is removed.

Row ``i`` of the embeddings is row ``i`` of the table. Images that cannot be read, or where no
face is found, are kept as rows with ``ok = False``, an ``error`` reason and a NaN embedding:
one bad file never stops a long run, and the row alignment with the input list is preserved.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from tqdm.auto import tqdm

from .inputs import InputItem
from .store import FORMATS, format_float, output_files, read_rows_csv, write_embeddings, write_json, write_npy, write_rows_csv

SHARD_DIR = ".embed_shards"
MANIFEST = "embed_manifest.json"


@dataclass
class PreparedFace:
    """A crop ready for the embedder, or the reason there is none."""

    crop: np.ndarray | None
    error: str = ""
    n_faces: int | None = None  # None: no detection ran (aligned input)
    det_score: float | None = None


# (item) -> PreparedFace; must not raise for bad images (return error instead).
FacePreparer = Callable[[InputItem], PreparedFace]


@dataclass
class EmbedSummary:
    output_files: list[Path]
    n_rows: int
    n_ok: int
    failures: Counter = field(default_factory=Counter)
    resumed_from_row: int = 0
    already_complete: bool = False


class OutputConflictError(ValueError):
    """The output folder holds results of a different run."""


def fingerprint(items: Sequence[InputItem], settings: dict) -> str:
    """Hash of the row list and every setting that changes the embeddings."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for item in items:  # names that are not valid UTF-8 hash by their bytes (surrogateescape, see hf_fiqa.atomic)
        digest.update(f"{item.path}\t{item.identity}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def run_embedding(
    items: Sequence[InputItem],
    prepare: FacePreparer,
    embed_crops: Callable[[list[np.ndarray]], np.ndarray],
    embedding_size: int,
    out_dir: str | Path,
    settings: dict,
    *,
    shard_size: int = 1024,
    fmt: str = "npy",
    workers: int = 2,
    overwrite: bool = False,
    progress: bool = True,
) -> EmbedSummary:
    """Embed ``items`` into ``out_dir``, resuming a previous interrupted run with the same inputs.

    ``prepare`` reads/detects/aligns one item (in a thread pool of ``workers``); ``embed_crops``
    maps a list of crops to ``(n, embedding_size)`` embeddings. ``settings`` (model, flags) go
    into the fingerprint that decides whether earlier shards may be reused.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    if shard_size <= 0:
        raise ValueError(f"shard_size must be positive, got {shard_size}")
    out_dir = Path(out_dir)
    shard_dir = out_dir / SHARD_DIR
    finals = output_files(out_dir, fmt)
    key = fingerprint(items, {**settings, "embedding_size": embedding_size})
    n_rows = len(items)
    n_shards = (n_rows + shard_size - 1) // shard_size

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
    for stale in existing:  # overwrite: drop them now, so an interrupted new run can resume without --overwrite
        stale.unlink()

    done = 0
    progress_path = shard_dir / "progress.json"
    if shard_dir.exists():
        state = json.loads(progress_path.read_text()) if progress_path.is_file() else {}
        if overwrite or state.get("fingerprint") != key or state.get("shard_size") != shard_size:
            if not overwrite and state and state.get("fingerprint") != key:
                raise OutputConflictError(
                    f"{shard_dir} holds an unfinished run with different inputs or settings; "
                    "pass --overwrite to discard it or choose another --output"
                )
            shutil.rmtree(shard_dir)
        else:
            done = int(state.get("done", 0))
    shard_dir.mkdir(parents=True, exist_ok=True)
    write_json(progress_path, {"fingerprint": key, "n_rows": n_rows, "shard_size": shard_size, "done": done})

    def safe_prepare(item: InputItem) -> PreparedFace:
        if getattr(item, "skip", ""):
            return PreparedFace(None, error=item.skip)
        try:
            return prepare(item)
        except Exception as exc:  # one bad file costs one row, whatever the reader raised
            return PreparedFace(None, error=f"cannot read {item.path}: {type(exc).__name__}: {exc}")

    model_name = settings.get("model", "the model")
    bar = tqdm(total=n_rows, initial=min(done * shard_size, n_rows), unit="img", desc="embed", disable=not progress)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for shard in range(done, n_shards):
            start = shard * shard_size
            chunk = items[start : start + shard_size]
            prepared = []
            for p in pool.map(safe_prepare, chunk):  # the bar moves per image read
                prepared.append(p)
                bar.update(1)
            good = [i for i, p in enumerate(prepared) if p.crop is not None]
            embeddings = np.full((len(chunk), embedding_size), np.nan, dtype=np.float32)
            if good:
                embeddings[good] = embed_crops([prepared[i].crop for i in good])
                for i in good:  # a NaN/inf embedding (broken weights) is an error row, never a success
                    if not np.isfinite(embeddings[i]).all():
                        embeddings[i] = np.nan
                        prepared[i] = PreparedFace(None, error=f"non-finite embedding from model {model_name} "
                                                               f"for {chunk[i].path}", n_faces=prepared[i].n_faces,
                                                   det_score=prepared[i].det_score)
            norms = np.linalg.norm(embeddings, axis=1)
            rows = [
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
            write_npy(shard_dir / f"shard_{shard:06d}.npy", embeddings)
            write_rows_csv(shard_dir / f"shard_{shard:06d}.csv", rows)
            write_json(progress_path, {"fingerprint": key, "n_rows": n_rows, "shard_size": shard_size, "done": shard + 1})
    bar.close()

    # Merge. Shards written by this or an earlier run are read back alike.
    parts = [np.load(shard_dir / f"shard_{s:06d}.npy") for s in range(n_shards)]
    embeddings = np.concatenate(parts) if parts else np.zeros((0, embedding_size), np.float32)
    rows = [r for s in range(n_shards) for r in read_rows_csv(shard_dir / f"shard_{s:06d}.csv")]
    if len(rows) != n_rows or embeddings.shape != (n_rows, embedding_size):
        raise RuntimeError(f"{shard_dir}: shards hold {len(rows)} rows / {embeddings.shape}, expected {n_rows}; rerun with --overwrite")
    failures = Counter(r["error"] for r in rows if r["ok"] != "True")
    n_ok = sum(r["ok"] == "True" for r in rows)
    write_embeddings(out_dir, fmt, rows, embeddings)
    write_json(manifest_path, {"fingerprint": key, "format": fmt, "n_rows": n_rows, "n_ok": n_ok,
                                "failures": dict(failures), "settings": settings})
    shutil.rmtree(shard_dir)
    return EmbedSummary(finals, n_rows, n_ok, failures, resumed_from_row=min(done * shard_size, n_rows))
