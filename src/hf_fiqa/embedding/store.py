"""The embeddings format of ``hf-fiqa embed``: the only module that writes or reads it.

Two layouts hold the same thing, row ``i`` of the table describing row ``i`` of the matrix:

* ``embeddings.npy`` (float32, N x D, NaN rows where no face) + ``rows.csv`` with the columns
  :data:`ROW_FIELDS`;
* one ``embeddings.parquet``: those columns plus a fixed-size list column ``embedding``.

Pseudo-labelling, evaluation and training read it through :func:`read_rows` and
:func:`read_embeddings`, so a change of format is a change here only. Every write goes to a
temporary name and is renamed into place: a file is either complete or absent.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..atomic import TEXT_ERRORS, atomic_write

ROW_FIELDS = ("row", "path", "identity", "ok", "error", "n_faces", "det_score", "norm")
FORMATS = ("npy", "parquet")
EMBEDDING_COLUMN = "embedding"


class EmbeddingFormatError(ValueError):
    """A file is not (or no longer) in the embeddings format; the message names it and why."""


# -- writing ------------------------------------------------------------------------------------------------------
def write_json(path: Path, payload: dict) -> None:
    atomic_write(path, lambda p: p.write_text(json.dumps(payload, indent=1)))


def write_npy(path: Path, array: np.ndarray) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.save(fh, array)

    atomic_write(path, write)


def write_npz(path: Path, **arrays: np.ndarray) -> None:
    """``np.savez`` through :func:`atomic_write`: a stage whose ``.npz`` marks it done never finds half of one."""
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)

    atomic_write(path, write)


def format_float(value: float | None) -> str:
    """How numbers appear in ``rows.csv``: 7 significant digits, empty for missing or non-finite."""
    return "" if value is None or not np.isfinite(value) else f"{value:.7g}"


def write_rows_csv(path: Path, rows: list[dict]) -> None:
    def write(tmp: Path) -> None:
        # File names that are not valid UTF-8 keep their bytes (surrogateescape; see hf_fiqa.atomic).
        with open(tmp, "w", newline="", encoding="utf-8", errors=TEXT_ERRORS) as fh:
            writer = csv.DictWriter(fh, fieldnames=ROW_FIELDS)
            writer.writeheader()
            writer.writerows(rows)

    atomic_write(path, write)


def read_rows_csv(path: Path) -> list[dict]:
    """The rows of one ``rows.csv`` (or shard) as strings, exactly as written."""
    with open(path, newline="", encoding="utf-8", errors=TEXT_ERRORS) as fh:
        return list(csv.DictReader(fh))


def output_files(out_dir: Path, fmt: str) -> list[Path]:
    """The files a finished run leaves in ``out_dir``."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    out_dir = Path(out_dir)
    return [out_dir / "embeddings.npy", out_dir / "rows.csv"] if fmt == "npy" else [out_dir / "embeddings.parquet"]


def write_embeddings(out_dir: Path, fmt: str, rows: list[dict], embeddings: np.ndarray) -> list[Path]:
    """Write a finished table and matrix in ``fmt``; returns the files written."""
    files = output_files(out_dir, fmt)
    if fmt == "npy":
        write_npy(files[0], embeddings)
        write_rows_csv(files[1], rows)
    else:
        _write_parquet(files[0], rows, embeddings)
    return files


def _raw_bytes(text: str) -> bytes | None:
    """The original bytes of a surrogateescape-decoded name, or None when it is valid UTF-8."""
    try:
        text.encode("utf-8")
        return None
    except UnicodeEncodeError:
        return text.encode("utf-8", TEXT_ERRORS)


def _displayable(text: str) -> str:
    return text if _raw_bytes(text) is None else text.encode("utf-8", TEXT_ERRORS).decode("utf-8", "backslashreplace")


def _write_parquet(path: Path, rows: list[dict], embeddings: np.ndarray) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise RuntimeError("--format parquet needs pyarrow (pip install 'hf-fiqa[data]')") from None

    def num(values: list[Any], kind: type) -> list:
        return [kind(v) if v != "" else None for v in values]

    columns = {name: [r[name] for r in rows] for name in ROW_FIELDS}
    # Parquet strings must be valid UTF-8: a file name that is not (surrogateescape-decoded, see hf_fiqa.atomic)
    # is shown with backslash escapes in ``path`` and kept exactly, as bytes, in ``path_bytes``.
    raw = [_raw_bytes(v) for v in columns["path"]]
    extra = {"path_bytes": pa.array(raw, pa.binary())} if any(b is not None for b in raw) else {}
    table = pa.table(
        {
            "row": pa.array(num(columns["row"], int), pa.int64()),
            "path": pa.array([_displayable(v) for v in columns["path"]], pa.string()),
            **extra,
            "identity": pa.array([_displayable(v) for v in columns["identity"]], pa.string()),
            "ok": pa.array([v in (True, "True") for v in columns["ok"]], pa.bool_()),
            "error": pa.array([_displayable(v) for v in columns["error"]], pa.string()),
            "n_faces": pa.array(num(columns["n_faces"], int), pa.int32()),
            "det_score": pa.array(num(columns["det_score"], float), pa.float32()),
            "norm": pa.array(num(columns["norm"], float), pa.float32()),
            EMBEDDING_COLUMN: pa.FixedSizeListArray.from_arrays(
                pa.array(embeddings.reshape(-1), pa.float32()), embeddings.shape[1]
            ),
        }
    )
    atomic_write(path, lambda tmp: pq.write_table(table, str(tmp)))


# -- reading ------------------------------------------------------------------------------------------------------
def read_rows(path: str | Path, required: tuple[str, ...] = ("row", "identity")):
    """The row table (``rows.csv`` or ``embeddings.parquet``) as a pandas DataFrame.

    ``identity`` stays text (``"007"`` is not 7), ``ok`` becomes a boolean column (every row is
    usable when a table has none), and ``required`` columns must be present.
    """
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise EmbeddingFormatError(f"{p}: no such file")
    if p.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        names = [n for n in pq.read_schema(p).names if n != EMBEDDING_COLUMN]
        table = pq.read_table(p, columns=names).to_pandas()
        if "identity" in table.columns:
            table["identity"] = table["identity"].fillna("").astype(str)
        if "path_bytes" in table.columns:  # exact names that are not valid UTF-8 (see _write_parquet)
            raw = table.pop("path_bytes")
            table["path"] = pd.Series([p if b is None else bytes(b).decode("utf-8", TEXT_ERRORS)
                                       for p, b in zip(table["path"], raw)], index=table.index, dtype=object)
    else:
        table = pd.read_csv(p, dtype={"identity": str, "path": object}, keep_default_na=False,
                            encoding_errors=TEXT_ERRORS)  # path: object, so undecodable bytes (surrogates) fit
    missing = set(required) - set(table.columns)
    if missing:
        raise EmbeddingFormatError(f"{p} lacks the column(s) {sorted(missing)} (expected the rows table of hf-fiqa embed)")
    if "ok" in table.columns:
        table["ok"] = table["ok"].astype(str).str.lower().isin(["true", "1"])
    else:
        table["ok"] = True
    return table


def usable_rows(path: str | Path) -> tuple[np.ndarray, np.ndarray, int]:
    """``(row indices, identities, rows left out)``: the rows of a table that have an embedding."""
    table = read_rows(path)
    keep = table["ok"].to_numpy(dtype=bool)
    rows = table["row"].to_numpy(dtype=np.int64)[keep]
    identities = table["identity"].astype(str).to_numpy()[keep].astype(str)
    return rows, identities, int((~keep).sum())


def read_embeddings(path: str | Path, column: str = EMBEDDING_COLUMN, mmap: bool = False) -> np.ndarray:
    """The ``(N, D)`` matrix from ``embeddings.npy`` (memory-mapped with ``mmap``) or a Parquet list column."""
    p = Path(path)
    if not p.is_file():
        raise EmbeddingFormatError(f"embeddings {p}: no such file")
    if p.suffix.lower() != ".parquet":
        try:
            emb = np.load(p, mmap_mode="r" if mmap else None, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise EmbeddingFormatError(f"embeddings {p}: not a readable .npy array ({exc})") from None
        if not isinstance(emb, np.ndarray):
            raise EmbeddingFormatError(f"embeddings {p}: not a single .npy array")
    else:
        emb = _read_parquet_column(p, column)
    if emb.ndim != 2 or not np.issubdtype(emb.dtype, np.number):
        raise EmbeddingFormatError(f"embeddings {p}: expected a numeric (N, D) array, got {emb.dtype} {emb.shape}")
    return emb


def _read_parquet_column(p: Path, column: str) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(p, columns=[column])
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file or column
        raise EmbeddingFormatError(f"embeddings {p}: cannot read column '{column}' ({type(exc).__name__}: {exc})") from None
    arr = table.column(column).combine_chunks()
    if arr.null_count:
        raise EmbeddingFormatError(f"embeddings {p}: column '{column}' has {arr.null_count} null rows")
    if pa.types.is_fixed_size_list(arr.type):
        dim = arr.type.list_size
    elif pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type):
        lengths = np.unique(arr.value_lengths().to_numpy())
        if lengths.size != 1:
            raise EmbeddingFormatError(f"embeddings {p}: rows of column '{column}' have different lengths {lengths[:5].tolist()}")
        dim = int(lengths[0])
    else:
        raise EmbeddingFormatError(f"embeddings {p}: column '{column}' is {arr.type}, not a list of numbers")
    return arr.flatten().to_numpy(zero_copy_only=False).reshape(len(arr), dim)
