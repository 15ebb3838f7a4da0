"""Crash-safe file writing for the training loop (private to ``hf_fiqa.training``).

A file is written to a temporary name in its own folder, flushed to disk and renamed over the target with
``os.replace``: a reader (or a resumed run) sees the old file or the new one, never a truncated one. A folder is
built under a temporary name and renamed into place the same way.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def atomic_write_text(path: str | Path, text: str) -> None:
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


def fsync_dir(folder: str | Path) -> None:
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


def replace_dir(tmp: str | Path, final: str | Path) -> None:
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
