"""A resumable run over ``n_rows`` rows, cut into shards of consecutive rows that processes take in turn.

Shard ``s`` holds rows ``[s * shard_size, (s + 1) * shard_size)`` and belongs to process ``s % world``
(rank-strided: every process gets shards from the whole list, so a slow region of the list is shared, and a
restart with another number of processes finds the finished shards where it expects them). A shard is a few
files named ``shard_NNNNNN<suffix>``, each written under a temporary name and renamed (see
:mod:`hf_fiqa.atomic`); the last suffix is written last, so its file marks the shard complete. The files
themselves are the progress record: no counter that two processes would have to update.

``state.json`` holds the fingerprint of the inputs and settings. A folder left by an interrupted run with the
same fingerprint is resumed; one with another fingerprint is refused unless ``overwrite`` (then discarded);
with another shard size the unfinished run starts over (the results would be the same).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Iterable

from ..atomic import atomic_write_text
from .group import ProcessGroup

STATE_FILE = "state.json"


class OutputConflictError(ValueError):
    """The output folder holds results of a different run."""


def fingerprint(rows: Iterable[str], settings: dict) -> str:
    """Hash of the row list and every setting that changes the results (never the number of processes)."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for row in rows:  # names that are not valid UTF-8 hash by their bytes (surrogateescape, see hf_fiqa.atomic)
        digest.update(f"{row}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


class ShardedRun:
    """The shards of one run in ``folder``; see the module docstring for the layout and the resume rules."""

    def __init__(self, folder: str | Path, n_rows: int, shard_size: int, key: str, suffixes: tuple[str, ...],
                 group: ProcessGroup | None = None):
        if shard_size <= 0:
            raise ValueError(f"shard_size must be positive, got {shard_size}")
        if not suffixes:
            raise ValueError("a shard needs at least one file suffix")
        self.folder = Path(folder)
        self.n_rows = int(n_rows)
        self.shard_size = int(shard_size)
        self.key = key
        self.suffixes = tuple(suffixes)
        self.group = group or ProcessGroup()
        self.n_shards = (self.n_rows + self.shard_size - 1) // self.shard_size

    # -- layout ---------------------------------------------------------------------------------------------
    def rows(self, shard: int) -> range:
        return range(shard * self.shard_size, min((shard + 1) * self.shard_size, self.n_rows))

    def path(self, shard: int, suffix: str) -> Path:
        return self.folder / f"shard_{shard:06d}{suffix}"

    def is_complete(self, shard: int) -> bool:
        return all(self.path(shard, suffix).is_file() for suffix in self.suffixes)

    def mine(self) -> list[int]:
        """The shards this process owns."""
        return list(range(self.group.rank, self.n_shards, self.group.world))

    def pending(self) -> list[int]:
        """This process's shards that are not complete, in order."""
        return [s for s in self.mine() if not self.is_complete(s)]

    def rows_done(self, shards: Iterable[int] | None = None) -> int:
        """Rows in the complete shards among ``shards`` (all shards by default)."""
        return sum(len(self.rows(s)) for s in (range(self.n_shards) if shards is None else shards)
                   if self.is_complete(s))

    def batches(self, batch_size: int) -> list[tuple[int, list[int]]]:
        """``(shard, rows)`` batches of at most ``batch_size`` rows over this process's pending shards.

        A batch never spans two shards, so what is computed together (and any batch-dependent rounding of the
        model) is the same whatever the number of processes."""
        out = []
        for shard in self.pending():
            rows = self.rows(shard)
            out.extend((shard, list(rows[i:i + batch_size])) for i in range(0, len(rows), batch_size))
        return out

    # -- life cycle -----------------------------------------------------------------------------------------
    def open(self, overwrite: bool = False) -> None:
        """Resume, start over or refuse, as the module docstring says; every process returns together.

        Every process decides from the same files before any of them changes anything (so they all raise the
        same error, or none does); then only the main process cleans and writes ``state.json``."""
        state_path = self.folder / STATE_FILE
        state = {}
        if self.folder.exists():
            try:
                state = json.loads(state_path.read_text())
            except (OSError, ValueError):
                state = {}  # no readable state: nothing in the folder can be trusted
        if state and state.get("fingerprint") != self.key and not overwrite:
            raise OutputConflictError(
                f"{self.folder} holds an unfinished run with different inputs or settings; "
                "pass --overwrite to discard it or choose another output"
            )
        fresh = overwrite or state.get("fingerprint") != self.key or state.get("shard_size") != self.shard_size \
            or state.get("n_rows") != self.n_rows
        self.group.barrier()
        if self.group.is_main:
            if fresh and self.folder.exists():
                shutil.rmtree(self.folder)
            self.folder.mkdir(parents=True, exist_ok=True)
            if fresh:
                atomic_write_text(state_path, json.dumps(
                    {"fingerprint": self.key, "n_rows": self.n_rows, "shard_size": self.shard_size}, indent=1))
        self.group.barrier()

    def wait_for_all(self) -> None:
        """Every process's shards are written; on the main process, check that none is missing."""
        self.group.barrier()
        if self.group.is_main:
            missing = [s for s in range(self.n_shards) if not self.is_complete(s)]
            if missing:
                raise RuntimeError(f"{self.folder}: shards {missing[:10]} are missing after every process finished; "
                                   "run the same command again to compute them")

    def remove(self) -> None:
        """Drop the shard folder once its content is merged (main process only)."""
        if self.group.is_main:
            shutil.rmtree(self.folder, ignore_errors=True)
