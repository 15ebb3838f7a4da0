"""Decode, detect and align in DataLoader workers while the main process runs the model.

Each batch of rows is prepared by one worker process (``workers`` of them, two batches ahead each), so JPEG
decoding and face detection overlap the forward pass instead of alternating with it. With ``workers=0`` the
same loop runs everything in the main process.

Workers are spawned, not forked: a forked child inherits OpenCV's thread pool in whatever state the parent
left it, and hangs in it (seen: ``cv2.setNumThreads`` in a child forked after the parent had warped photos).
So the preparer and the rows it needs are pickled into each worker (a detector rebuilds its OpenCV object
there), and each worker pays one start-up (importing torch and OpenCV, 2-8 s here) per run: worth it for
archives, not for a handful of photos.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Iterator, Sequence

from torch.utils.data import DataLoader, Dataset


@dataclass
class ShardBatch:
    """Prepared rows of one shard (``shard`` None outside a sharded run); ``last``: the shard ends here."""

    shard: int | None
    rows: list[int]
    prepared: list[Any]
    last: bool


class _PreparedRows(Dataset):
    """The rows a run needs (only those are pickled into the workers), prepared on access."""

    def __init__(self, items: dict[int, Any], prepare: Callable[[Any], Any]):
        self.items = items
        self.prepare = prepare

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, row: int) -> Any:
        return self.prepare(self.items[row])


def _keep_list(samples: list[Any]) -> list[Any]:
    return samples


def _init_worker(parent: int, _: int) -> None:
    _die_with_parent(parent)
    try:  # one thread per worker (the DataLoader does the same for torch): the workers already use the cores
        import cv2

        cv2.setNumThreads(1)
    except ImportError:
        pass


def _die_with_parent(parent: int) -> None:
    """End this worker when the process it works for dies (killed, out of memory).

    torch's watchdog compares the parent pid with the one it saw when the worker loop began, so a parent that
    died while a spawned worker was still importing goes unnoticed, and the orphan keeps the launch's output
    pipes open forever (seen: a killed ``accelerate launch`` rank). Linux delivers SIGKILL on the parent's death
    instead; elsewhere the pid check covers the start-up."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:
        os._exit(1)


def prepared_batches(items: Sequence[Any], prepare: Callable[[Any], Any],
                     batches: Sequence[tuple[int | None, list[int]]], workers: int = 0) -> Iterator[ShardBatch]:
    """``prepare(items[row])`` for the rows of each batch, in batch order; ``prepare`` must not raise for a bad
    item (it returns a record of the failure), since one unreadable photo must not stop a run."""
    if not batches:
        return
    needed = {row: items[row] for _, rows in batches for row in rows}
    loader = DataLoader(_PreparedRows(needed, prepare), batch_sampler=[rows for _, rows in batches],
                        num_workers=int(workers), collate_fn=_keep_list,
                        worker_init_fn=partial(_init_worker, os.getpid()) if workers else None,
                        multiprocessing_context="spawn" if workers else None,
                        prefetch_factor=2 if workers else None)
    for index, prepared in enumerate(loader):
        shard, rows = batches[index]
        last = index + 1 == len(batches) or batches[index + 1][0] != shard
        yield ShardBatch(shard, rows, prepared, last)
