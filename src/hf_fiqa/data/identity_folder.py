"""Photos grouped by person - ``root/<identity>/<image>`` or a ``path,identity`` CSV - as a ``Dataset``.

This is how most face sets are handed around (LFW, CelebA re-packs, the project's own
``celeba-wild-ids`` and ``lfw`` folders, which keep a ``labels.csv`` beside ``images/``).
Paths in a CSV are relative to the CSV's folder. ``identity`` is a ``ClassLabel`` whose names
are the identities sorted as strings, so label ids do not depend on listing order.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from ..io import IMAGE_SUFFIXES
from .common import ImageCheck, check_image_files, rows_to_dataset
from .errors import DatasetFormatError, SkipLog, handle_bad_item

LABELS_CSV = "labels.csv"


def identity_features(identities: list[str]):
    from datasets import ClassLabel, Features, Image, Value

    return Features({"image": Image(), "path": Value("string"), "identity": ClassLabel(names=identities)})


def read_identity_csv(
    csv_path: str | Path, *, skip_errors: bool = False, skipped: SkipLog | None = None
) -> list[dict]:
    """Rows ``{image (absolute), path (as written), identity, line}`` from a ``path,identity`` CSV."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise DatasetFormatError(f"identity CSV not found: {csv_path}")
    base = csv_path.parent
    rows: list[dict] = []
    seen: set[str] = set()
    with open(csv_path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not {"path", "identity"} <= set(reader.fieldnames):
            raise DatasetFormatError(
                f"{csv_path}: header must have 'path' and 'identity' columns, got {reader.fieldnames}"
            )
        for row in reader:
            where = f"{csv_path} line {reader.line_num}"
            rel, identity = (row.get("path") or "").strip(), (row.get("identity") or "").strip()
            if None in row or not rel or not identity:
                handle_bad_item(where, "expected non-empty 'path' and 'identity' fields", skip_errors=skip_errors,
                                skipped=skipped)
                continue
            if Path(rel).is_absolute() or ".." in Path(rel).parts:
                handle_bad_item(where, f"path {rel!r} must be relative and stay inside {base}",
                                skip_errors=skip_errors, skipped=skipped)
                continue
            if rel in seen:
                handle_bad_item(where, f"duplicate path {rel!r}", skip_errors=skip_errors, skipped=skipped)
                continue
            seen.add(rel)
            rows.append({"image": str(base / rel), "path": rel, "identity": identity, "line": where})
    if not rows:
        raise DatasetFormatError(f"{csv_path}: no rows")
    return rows


def scan_identity_folders(root: str | Path, *, skip_errors: bool = False, skipped: SkipLog | None = None) -> list[dict]:
    """Rows for ``root/<identity>/<image>`` (images directly inside each identity folder)."""
    root = Path(root)
    rows: list[dict] = []
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if entry.name.startswith("."):
            continue
        if not entry.is_dir():
            continue  # stray files beside the identity folders (README, lists) are not images of anyone
        for img in sorted(os.scandir(entry.path), key=lambda e: e.name):
            if img.name.startswith("."):
                continue
            path = Path(img.path)
            if img.is_dir():
                handle_bad_item(str(path), "nested folder inside an identity folder (expected root/<identity>/<image>)",
                                skip_errors=skip_errors, skipped=skipped)
                continue
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            rel = path.relative_to(root).as_posix()
            rows.append({"image": str(path), "path": rel, "identity": entry.name, "line": str(path)})
    if not rows:
        raise DatasetFormatError(f"no images in {root}/<identity>/ folders")
    return rows


def load_identity_folder(
    source: str | Path,
    *,
    check_images: ImageCheck = "header",
    skip_errors: bool = False,
    skipped: SkipLog | None = None,
):
    """A ``Dataset`` (image, path, identity) from a CSV file or a folder.

    ``source`` may be a ``path,identity`` CSV, a folder holding ``labels.csv`` (which then
    wins over the folder structure), or a ``root/<identity>/<image>`` folder.
    """
    source = Path(source)
    if source.is_file():
        rows = read_identity_csv(source, skip_errors=skip_errors, skipped=skipped)
    elif (source / LABELS_CSV).is_file():
        rows = read_identity_csv(source / LABELS_CSV, skip_errors=skip_errors, skipped=skipped)
    elif source.is_dir():
        rows = scan_identity_folders(source, skip_errors=skip_errors, skipped=skipped)
    else:
        raise DatasetFormatError(f"identity dataset not found: {source}")
    keep = check_image_files([r["image"] for r in rows], check_images, skip_errors=skip_errors, skipped=skipped,
                             labels=[r["line"] for r in rows], desc="checking identity images")
    rows = [r for r, k in zip(rows, keep) if k]
    identities = sorted({r["identity"] for r in rows})
    return rows_to_dataset(rows, identity_features(identities))
