"""FFHQ (70,000 aligned Flickr faces, no quality labels) as a ``DatasetDict``.

Accepted layouts: the official ``images1024x1024/00000/00000.png`` tree (1,000 images per
sub-folder), its ``thumbnails128x128`` or re-sized 512/256 variants, or a flat folder of
``NNNNN.png``. Images are found recursively and identified by the number in their name.

The optional ``ffhq-dataset-v2.json`` (keys ``"0"``..``"69999"``) is joined by that number;
it adds the official split (``category``: ``training`` 60,000 / ``validation`` 10,000), the
Flickr licence, author, country and URL of each photo, and the 68 dlib landmarks the faces
were aligned with (``landmarks_1024``: in the 1024x1024 frame whatever variant is loaded).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from .common import ImageCheck, check_image_files, list_feature, split_dict
from .errors import DatasetFormatError, SkipLog, handle_bad_item

METADATA_JSON = "ffhq-dataset-v2.json"
CATEGORY_SPLITS = {"training": "train", "validation": "validation"}
_NUMBER_RE = re.compile(r"^(\d+)\.png$", re.IGNORECASE)


def ffhq_features(with_metadata: bool):
    from datasets import Features, Image, Value

    cols = {"image": Image(), "image_number": Value("int32"), "path": Value("string")}
    if with_metadata:
        cols.update(
            {
                "license": Value("string"),
                "author": Value("string"),
                "country": Value("string"),
                "photo_url": Value("string"),
                "landmarks_1024": list_feature(list_feature(Value("float32"), length=2)),
            }
        )
    return Features(cols)


def find_ffhq_images(root: str | Path, *, skip_errors: bool = False, skipped: SkipLog | None = None) -> dict[int, Path]:
    """``{image number: path}`` for every ``NNNNN.png`` under ``root`` (recursively)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetFormatError(f"FFHQ folder not found: {root}")
    found: dict[int, Path] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            if not name.lower().endswith(".png"):
                continue
            path = Path(dirpath) / name
            match = _NUMBER_RE.match(name)
            if not match:
                handle_bad_item(str(path), "PNG name is not an FFHQ image number (NNNNN.png)",
                                skip_errors=skip_errors, skipped=skipped)
                continue
            number = int(match.group(1))
            if number in found:
                handle_bad_item(str(path), f"image number {number} also at {found[number]}",
                                skip_errors=skip_errors, skipped=skipped)
                continue
            found[number] = path
    if not found:
        raise DatasetFormatError(f"no FFHQ PNG images (NNNNN.png) under {root}")
    return dict(sorted(found.items()))


def _metadata_fields(entry: dict, where: str) -> dict:
    try:
        meta = entry["metadata"]
        landmarks = entry["image"]["face_landmarks"]
        category = entry["category"]
    except (KeyError, TypeError) as exc:
        raise DatasetFormatError(f"{where}: missing field {exc}") from None
    if category not in CATEGORY_SPLITS:
        raise DatasetFormatError(f"{where}: unknown category {category!r}")
    if not isinstance(landmarks, list) or any(not isinstance(p, list) or len(p) != 2 for p in landmarks):
        raise DatasetFormatError(f"{where}: image.face_landmarks is not a list of [x, y] points")
    return {
        "split": CATEGORY_SPLITS[category],
        "license": meta.get("license"),
        "author": meta.get("author"),
        "country": meta.get("country") or None,
        "photo_url": meta.get("photo_url"),
        "landmarks_1024": [[float(x), float(y)] for x, y in landmarks],
    }


def load_ffhq(
    root: str | Path,
    metadata_json: str | Path | None = None,
    *,
    check_images: ImageCheck = "header",
    skip_errors: bool = False,
    skipped: SkipLog | None = None,
):
    """FFHQ images under ``root`` as a ``DatasetDict``.

    With metadata (``metadata_json``, or ``ffhq-dataset-v2.json`` found in ``root`` or its
    parent) the splits are the official ``train``/``validation``; without, everything is
    ``train``. An image without a metadata entry is an error (or skipped); metadata entries
    without an image are fine - partial copies are common.
    """
    root = Path(root)
    images = find_ffhq_images(root, skip_errors=skip_errors, skipped=skipped)
    if metadata_json is None:
        for candidate in (root / METADATA_JSON, root.parent / METADATA_JSON):
            if candidate.is_file():
                metadata_json = candidate
                break
    metadata: dict | None = None
    if metadata_json is not None:
        metadata_json = Path(metadata_json)
        try:
            with open(metadata_json, encoding="utf-8") as fh:
                metadata = json.load(fh)
        except FileNotFoundError:
            raise DatasetFormatError(f"FFHQ metadata file not found: {metadata_json}") from None
        except json.JSONDecodeError as exc:
            raise DatasetFormatError(f"{metadata_json}: not valid JSON ({exc})") from None
        if not isinstance(metadata, dict):
            raise DatasetFormatError(f"{metadata_json}: expected an object keyed by image number")

    paths = [str(p) for p in images.values()]
    keep = check_image_files(paths, check_images, skip_errors=skip_errors, skipped=skipped, desc="checking FFHQ images")
    by_split: dict[str, list[dict]] = {"train": [], "validation": []}
    for (number, path), ok in zip(images.items(), keep):
        if not ok:
            continue
        row = {"image": str(path), "image_number": number, "path": path.relative_to(root).as_posix()}
        if metadata is None:
            by_split["train"].append(row)
            continue
        entry = metadata.get(str(number))
        if entry is None:
            handle_bad_item(str(path), f"no entry {number!r} in {metadata_json}", skip_errors=skip_errors,
                            skipped=skipped)
            continue
        try:
            fields = _metadata_fields(entry, f"{metadata_json} entry {number}")
        except DatasetFormatError as exc:
            handle_bad_item(str(path), str(exc), skip_errors=skip_errors, skipped=skipped)
            continue
        by_split[fields.pop("split")].append(dict(row, **fields))
    return split_dict(by_split, ffhq_features(metadata is not None))
