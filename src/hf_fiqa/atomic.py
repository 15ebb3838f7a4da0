"""Atomic writing: a file or a folder is complete or absent, never half-written.

Every writer of the package that must not leave a truncated result goes through this module (a leaf: it
imports nothing from hf-fiqa):

* :func:`atomic_write` / :func:`atomic_write_text`: the bytes go to a temporary file in the target's own
  folder and are moved onto the final name with :func:`os.replace` once complete;
* :class:`AtomicTextFile`: a text file written over time (rows), moved into place by ``commit`` or kept as
  ``NAME.partial`` by ``abort``; :class:`RowWriter` writes CSV / JSONL rows through it (or to stdout), and
  :func:`read_row_file` reads them back;
* :func:`save_figure`: a matplotlib figure through :func:`atomic_write`;
* :class:`StagedFolder` and :func:`replace_dir`: a whole folder built under a hidden name beside its
  destination and renamed into place, replacing an earlier one.

A rename in one folder is atomic on POSIX file systems, so a reader (or a resumed run) sees the old file or
folder or the new one. :func:`atomic_write_text` and :func:`replace_dir` also ``fsync`` the data and the
folder, for files a crash must not lose (training state).

File names that are not valid UTF-8 (Linux allows any bytes) are carried as Python does, decoded with
``surrogateescape`` (``os.fsdecode``). Text files are written UTF-8 with ``errors="surrogateescape"``, so such a
name appears in a CSV with its original bytes; JSONL holds it as JSON ``\\udcXX`` escapes, which ``json.loads``
turns back into the same ``str`` (``os.fsencode`` gives the original bytes).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import IO, Any, Callable, Mapping

#: How text outputs are encoded: UTF-8, undecodable file-name bytes written back as they were.
TEXT_ENCODING = "utf-8"
TEXT_ERRORS = "surrogateescape"


# -- files ---------------------------------------------------------------------------------------------------------
def _temp_path(path: Path) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent if str(path.parent) else ".")
    os.close(fd)
    return Path(name)


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> None:
    """``write(tmp)`` to a temporary file in ``path``'s folder, then rename it onto ``path``.

    Readers never see half a file; when ``write`` raises, the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    tmp = _temp_path(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def fsync_dir(folder: str | os.PathLike) -> None:
    """Make a rename in ``folder`` durable (a no-op where directories cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """``text`` to ``path`` (its folder created), flushed to disk before the rename, and the rename made durable."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


class AtomicTextFile:
    """A text file written under a temporary name and moved onto ``path`` by :meth:`commit`.

    :meth:`abort` (or leaving a ``with`` block by an exception) keeps what was written as ``path.partial``
    when ``keep_partial`` is set, else removes it; ``path`` itself is never half-written.
    """

    def __init__(self, path: str | os.PathLike, keep_partial: bool = True):
        self.path = Path(path)
        self.keep_partial = keep_partial
        self.tmp = _temp_path(self.path)
        self.handle: IO[str] = open(self.tmp, "w", newline="", encoding=TEXT_ENCODING, errors=TEXT_ERRORS)
        self.partial: Path | None = None

    def commit(self) -> Path:
        self.handle.close()
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> Path | None:
        self.handle.close()
        if self.keep_partial and self.tmp.stat().st_size:
            self.partial = self.path.with_name(self.path.name + ".partial")
            os.replace(self.tmp, self.partial)
            return self.partial
        self.tmp.unlink(missing_ok=True)
        return None

    def __enter__(self) -> IO[str]:
        return self.handle

    def __exit__(self, kind, value, tb) -> None:
        if kind is None:
            self.commit()
        else:
            self.abort()


def save_figure(fig: Any, path: str | os.PathLike, **kwargs: Any) -> Path:
    """``fig.savefig`` through :func:`atomic_write` (the format is taken from ``path``'s extension)."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    atomic_write(path, lambda tmp: fig.savefig(tmp, format=fmt, **kwargs))
    return path


# -- rows ----------------------------------------------------------------------------------------------------------
ROW_SUFFIXES = (".csv", ".jsonl")


class RowWriter:
    """CSV or JSONL (by suffix) to a file, written atomically, or CSV to stdout.

    Call :meth:`close` with ``ok=True`` to move the finished file into place; ``ok=False`` (an interruption)
    keeps the rows written so far as ``OUTPUT.partial`` (unless ``keep_partial=False``: a shard that is simply
    computed again).
    """

    def __init__(self, output: str | os.PathLike | None, columns: list[str], keep_partial: bool = True):
        self.columns = columns
        self.output = Path(output) if output else None
        self.jsonl = self.output is not None and self.output.suffix.lower() == ".jsonl"
        self.file: AtomicTextFile | None = None
        if self.output is not None:
            self.file = AtomicTextFile(self.output, keep_partial=keep_partial)
            self.handle: IO[str] = self.file.handle
        else:
            self.handle = sys.stdout
            try:  # file names with undecodable bytes go out as those bytes, not as a crash
                sys.stdout.reconfigure(errors=TEXT_ERRORS)  # type: ignore[union-attr]
            except (AttributeError, ValueError):
                pass
        self.csv = None if self.jsonl else csv.DictWriter(self.handle, fieldnames=columns, extrasaction="ignore")
        if self.csv:
            self.csv.writeheader()

    def write(self, row: dict) -> None:
        if self.jsonl:
            self.handle.write(json.dumps({k: row.get(k) for k in self.columns}, default=str) + "\n")
        else:
            self.csv.writerow(row)
        self.handle.flush()

    def append_rows_of(self, path: str | os.PathLike) -> None:
        """Copy the rows of ``path``, a file another RowWriter wrote with the same columns and format, without
        its header: text as written, so merged shards are byte for byte the rows one writer would have made."""
        with open(path, newline="", encoding=TEXT_ENCODING, errors=TEXT_ERRORS) as source:
            if not self.jsonl:
                source.readline()  # the header (column names never hold a line break)
            shutil.copyfileobj(source, self.handle)
        self.handle.flush()

    def close(self, ok: bool = True) -> Path | None:
        """Finish: the output file when ``ok``, else the ``.partial`` file kept (or None)."""
        if self.file is None:
            self.handle.flush()
            return None
        return self.file.commit() if ok else self.file.abort()


def read_row_file(path: str | os.PathLike) -> list[dict]:
    """The rows of a file :class:`RowWriter` wrote: CSV values as text, JSONL values as JSON gave them."""
    path = Path(path)
    with open(path, newline="", encoding=TEXT_ENCODING, errors=TEXT_ERRORS) as fh:
        if path.suffix.lower() == ".jsonl":
            return [json.loads(line) for line in fh if line.strip()]
        return list(csv.DictReader(fh))


# -- folders -------------------------------------------------------------------------------------------------------
def replace_dir(tmp: str | os.PathLike, final: str | os.PathLike) -> None:
    """Move the complete folder ``tmp`` to ``final``, replacing a folder already there.

    ``os.replace`` cannot replace a non-empty folder, so an existing ``final`` is first renamed aside (then
    removed): at every moment ``final`` is either the old complete folder, absent, or the new complete one."""
    tmp, final = Path(tmp), Path(final)
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old")
        if old.exists():
            shutil.rmtree(old)
        os.replace(final, old)
    os.replace(tmp, final)
    fsync_dir(final.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


class StagedFolder:
    """A folder built under a hidden name beside ``final`` and renamed into place when complete.

    ``with StagedFolder(out) as tmp: write(tmp)``: on a clean exit ``tmp`` replaces ``out`` as a whole
    (:func:`replace_dir`: an earlier ``out`` is removed); when the block raises (an error, Ctrl-C) the staging
    folder is removed and ``out`` is untouched. Whether an existing ``out`` may be replaced is the caller's
    decision, checked before any work. :meth:`final_paths` maps paths written under ``tmp`` to their place
    under ``out``.
    """

    def __init__(self, final: str | os.PathLike):
        self.final = Path(final)
        parent = self.final.parent if str(self.final.parent) else Path(".")
        parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.final.name}.partial-", dir=parent))

    def __enter__(self) -> Path:
        return self.tmp

    def __exit__(self, kind, value, tb) -> None:
        if kind is None:
            try:
                replace_dir(self.tmp, self.final)
                return
            except BaseException:
                shutil.rmtree(self.tmp, ignore_errors=True)
                raise
        shutil.rmtree(self.tmp, ignore_errors=True)

    def final_paths(self, staged: Mapping[Any, str | os.PathLike]) -> dict:
        """``{key: path under tmp}`` -> ``{key: the same path under final}``."""
        return {key: self.final / Path(path).relative_to(self.tmp) for key, path in staged.items()}


__all__ = ["ROW_SUFFIXES", "TEXT_ENCODING", "TEXT_ERRORS", "AtomicTextFile", "RowWriter", "StagedFolder",
           "atomic_write", "atomic_write_text", "fsync_dir", "replace_dir", "save_figure"]
