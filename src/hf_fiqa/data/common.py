"""Small helpers shared by the loaders: feature types, file lookup, image checks.

Loaders build datasets from *paths* (``datasets.Image()`` stores the path and decodes lazily),
so a broken file would otherwise surface only when a training step touches it, far from the
cause. :func:`check_image_files` lets each loader find such files up front and name them.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable, Literal, Sequence

from .errors import SkipLog, handle_bad_item

ImageCheck = Literal["none", "header", "decode"]


def list_feature(inner, length: int = -1):
    """A list feature: ``datasets.List`` (datasets >= 4) or ``Sequence`` on older releases."""
    try:
        from datasets import List
    except ImportError:  # datasets 3.x
        from datasets import Sequence

        return Sequence(inner, length=length)
    return List(inner, length=length)


class CaseInsensitiveDir:
    """Find files in one folder regardless of name case.

    Official archives disagree with their own label files about case (TID2013 lists
    ``i01_01_1.bmp`` while some copies hold ``I01_01_1.BMP``), and case-sensitive file systems
    make that fatal; we index the folder once and look names up lower-cased.
    """

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._by_lower: dict[str, Path] = {}
        if self.folder.is_dir():
            for entry in os.scandir(self.folder):
                if entry.is_file():
                    # If two files differ only by case, keep the first; duplicates are reported by callers.
                    self._by_lower.setdefault(entry.name.lower(), Path(entry.path))

    def get(self, name: str) -> Path | None:
        return self._by_lower.get(name.lower())

    def names(self) -> list[str]:
        return [p.name for p in self._by_lower.values()]

    def __len__(self) -> int:
        return len(self._by_lower)


def first_existing(candidates: Iterable[Path]) -> Path | None:
    for path in candidates:
        if path.exists():
            return path
    return None


def _check_one(path: str, mode: ImageCheck) -> str | None:
    """``None`` when ``path`` reads as an image at the requested depth, else the reason."""
    from PIL import Image, UnidentifiedImageError

    from ..io import ImageReadError, load_image

    if mode == "none":
        return None if os.path.isfile(path) else "no such file"
    if mode == "decode":
        try:
            load_image(path)
        except ImageReadError as exc:
            return exc.reason
        return None
    try:
        with Image.open(path) as img:
            img.verify()  # header (and PNG chunk CRCs); cheap, does not decode JPEG scans
    except FileNotFoundError:
        return "no such file"
    except UnidentifiedImageError:
        return "not a recognised image format"
    except (OSError, SyntaxError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def check_image_files(
    paths: Sequence[str],
    mode: ImageCheck,
    *,
    skip_errors: bool,
    skipped: SkipLog | None,
    labels: Sequence[str] | None = None,
    num_workers: int = 4,
    desc: str = "checking images",
) -> list[bool]:
    """Return a keep-flag per path; raise on the first bad file unless ``skip_errors``.

    ``mode``: ``"none"`` only checks the file exists, ``"header"`` opens it with PIL and
    verifies the header, ``"decode"`` decodes it fully (catches truncated JPEGs; slow on
    big sets). ``labels`` names where each path came from (e.g. ``"scores.csv line 7"``).
    Decoding runs on a thread pool: PIL releases the GIL while decoding.
    """
    from tqdm.auto import tqdm

    if mode not in ("none", "header", "decode"):
        raise ValueError(f"check_images must be 'none', 'header' or 'decode', got {mode!r}")
    keep: list[bool] = []
    workers = 1 if mode == "none" else max(1, num_workers)
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        reasons = pool.map(lambda p: _check_one(p, mode), paths)
        for i, reason in enumerate(tqdm(reasons, total=len(paths), desc=desc, disable=len(paths) < 1000)):
            if reason is None:
                keep.append(True)
                continue
            where = f"{paths[i]} ({labels[i]})" if labels is not None else str(paths[i])
            handle_bad_item(where, reason, skip_errors=skip_errors, skipped=skipped)
            keep.append(False)
    finally:
        # On the first error do not wait for thousands of queued checks.
        pool.shutdown(wait=True, cancel_futures=True)
    return keep


def select(values: Sequence, keep: Sequence[bool]) -> list:
    return [v for v, k in zip(values, keep) if k]


def rows_to_dataset(rows: Sequence[dict], features, split: str | None = None):
    """Build a ``datasets.Dataset`` from row dicts with typed ``features`` (column order kept)."""
    import datasets

    columns = {name: [row[name] for row in rows] for name in features}
    return datasets.Dataset.from_dict(columns, features=features, split=split)


def split_dict(rows_by_split: dict[str, list[dict]], features):
    """``DatasetDict`` with one entry per non-empty split, in the order given."""
    import datasets

    return datasets.DatasetDict(
        {name: rows_to_dataset(rows, features, split=name) for name, rows in rows_by_split.items() if rows}
    )


def seeded_group_split(
    groups: Sequence[str], ratios: Sequence[float], seed: int, names: Sequence[str] = ("train", "validation", "test")
) -> dict[str, str]:
    """Assign whole groups (e.g. reference images) to splits: ``{group: split_name}``.

    Groups are sorted before a seeded shuffle, so the result depends only on the set of
    groups, ``ratios`` and ``seed`` - not on file-system listing order. Every split with a
    positive ratio gets at least one group when there are enough groups.
    """
    import numpy as np

    if len(ratios) != len(names):
        raise ValueError(f"need one ratio per split {list(names)}, got {list(ratios)}")
    if any(r < 0 for r in ratios) or sum(ratios) <= 0:
        raise ValueError(f"split ratios must be non-negative with a positive sum, got {list(ratios)}")
    unique = sorted(set(groups))
    order = np.random.default_rng(seed).permutation(len(unique))
    total = float(sum(ratios))
    counts = [int(round(r / total * len(unique))) for r in ratios]
    # Give each non-empty split at least one group, then fix rounding on the largest split.
    for i, r in enumerate(ratios):
        if r > 0 and counts[i] == 0 and len(unique) >= sum(1 for x in ratios if x > 0):
            counts[i] = 1
    largest = int(np.argmax(ratios))
    counts[largest] += len(unique) - sum(counts)
    assignment: dict[str, str] = {}
    start = 0
    for name, n in zip(names, counts):
        for idx in order[start : start + n]:
            assignment[unique[idx]] = name
        start += n
    return assignment
