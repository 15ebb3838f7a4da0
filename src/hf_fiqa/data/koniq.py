"""KonIQ-10k (10,073 in-the-wild photos with crowd-sourced quality scores) as a ``DatasetDict``.

Label files this module reads (format is sniffed from the header, not the file name):

* ``koniq10k_scores_and_distributions.csv`` (official release): ``image_name, c1..c5,
  c_total, MOS, SD, MOS_zscore``; ``c1..c5`` are *counts* of ratings 1..5, ``MOS``/``SD`` are
  on the 1-5 rating scale, ``MOS_zscore`` is the 0-100 rescaled z-score MOS.
* ``koniq10k_distributions_sets.csv`` (the official split file, github subpic/koniq):
  ``image_name, c1..c5, c_total, MOS, SD, set``; here ``c1..c5`` are *fractions* of
  ``c_total`` and ``MOS`` is the 0-100 z-score MOS, while ``SD`` stays on the 1-5 scale;
  ``set`` is ``training``/``validation``/``test`` (7,058/1,000/2,015 images).
* MANIQA's ``koniq10k_label.txt``: ``name<TAB>score`` without a header, score = 1-5 MOS.

Whatever the source, rows are normalised to: ``mos`` (1-5), ``mos_std`` (1-5 scale),
``mos_zscore`` (0-100), ``distribution`` (integer counts of ratings 1..5) and
``num_ratings``; fields a source does not carry are ``None``. From the split file, the
1-5 MOS is recomputed from the rating fractions (it equals MANIQA's scores to 1e-6).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Sequence

from .common import ImageCheck, check_image_files, first_existing, list_feature, seeded_group_split, split_dict
from .errors import DatasetFormatError, SkipLog, handle_bad_item, skip_or_raise

SCORES_CSV = "koniq10k_scores_and_distributions.csv"
SETS_CSV = "koniq10k_distributions_sets.csv"
MANIQA_LIST = "koniq10k_label.txt"
# The official ``set`` values and the split names we publish them under.
OFFICIAL_SPLITS = {"training": "train", "validation": "validation", "test": "test"}
IMAGE_DIR_CANDIDATES = ("1024x768", "512x384", "images")
_DIST_COLS = ("c1", "c2", "c3", "c4", "c5")


def koniq10k_features():
    from datasets import Features, Image, Value

    return Features(
        {
            "image": Image(),
            "image_name": Value("string"),
            "mos": Value("float64"),
            "mos_std": Value("float64"),
            "mos_zscore": Value("float64"),
            "distribution": list_feature(Value("int32"), length=5),
            "num_ratings": Value("int32"),
        }
    )


def _float(text: str, where: str, column: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise DatasetFormatError(f"{where}: column {column!r} is not a number: {text!r}") from None
    if not math.isfinite(value):
        raise DatasetFormatError(f"{where}: column {column!r} is not finite: {text!r}")
    return value


def _parse_scores_row(row: dict, where: str, kind: str) -> dict:
    """One CSV row of the official scores file (``kind='scores'``) or split file (``'sets'``)."""
    name = (row.get("image_name") or "").strip()
    if not name:
        raise DatasetFormatError(f"{where}: empty image_name")
    total = _float(row["c_total"], where, "c_total")
    if total <= 0 or total != int(total):
        raise DatasetFormatError(f"{where}: c_total must be a positive integer, got {row['c_total']!r}")
    n = int(total)
    values = [_float(row[c], where, c) for c in _DIST_COLS]
    if any(v < 0 for v in values):
        raise DatasetFormatError(f"{where}: negative rating count/fraction in c1..c5")
    if kind == "sets":
        if abs(sum(values) - 1.0) > 1e-3:
            raise DatasetFormatError(f"{where}: c1..c5 should be fractions summing to 1, sum is {sum(values):.4f}")
        raw_counts = [v * n for v in values]
        counts = [int(round(c)) for c in raw_counts]
        if any(abs(c - r) > 0.02 for c, r in zip(counts, raw_counts)):
            raise DatasetFormatError(f"{where}: c1..c5 fractions are not multiples of 1/c_total ({n})")
        mos = sum((k + 1) * v for k, v in enumerate(values))
        zscore = _float(row["MOS"], where, "MOS")
    else:
        if any(v != int(v) for v in values):
            raise DatasetFormatError(f"{where}: c1..c5 should be integer rating counts")
        counts = [int(v) for v in values]
        mos = _float(row["MOS"], where, "MOS")
        zscore = _float(row["MOS_zscore"], where, "MOS_zscore")
    if not 1.0 - 1e-6 <= mos <= 5.0 + 1e-6:
        raise DatasetFormatError(f"{where}: MOS {mos} outside the 1-5 rating scale")
    return {
        "image_name": name,
        "mos": mos,
        "mos_std": _float(row["SD"], where, "SD"),
        "mos_zscore": zscore,
        "distribution": counts,
        "num_ratings": n,
        "set": (row.get("set") or "").strip() or None,
    }


def read_maniqa_label_list(path: str | Path) -> dict[str, float]:
    """MANIQA's label lists: ``name<TAB>score`` (KonIQ) or ``name, score`` (KADID) per line."""
    path = Path(path)
    labels: dict[str, float] = {}
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            parts = line.strip().split("\t") if "\t" in line else [p.strip() for p in line.split(",")]
            where = f"{path} line {lineno}"
            if len(parts) != 2 or not parts[0]:
                raise DatasetFormatError(f"{where}: expected 'name<TAB>score' or 'name, score', got {line.strip()!r}")
            if parts[0] in labels:
                raise DatasetFormatError(f"{where}: duplicate image name {parts[0]!r}")
            labels[parts[0]] = _float(parts[1], where, "score")
    if not labels:
        raise DatasetFormatError(f"{path}: no labels")
    return labels


def _sniff(path: Path) -> str:
    """'scores', 'sets' or 'maniqa', from the first line of ``path``."""
    if not path.is_file():
        raise DatasetFormatError(f"{path}: label file not found")
    with open(path, encoding="utf-8-sig") as fh:
        first = fh.readline().strip()
    header = [h.strip() for h in first.split(",")]
    if header[:1] == ["image_name"]:
        missing = [c for c in ("c_total", "MOS", "SD", *_DIST_COLS) if c not in header]
        if missing:
            raise DatasetFormatError(f"{path}: header lacks columns {missing}")
        if "MOS_zscore" in header:
            return "scores"
        if "set" in header:
            return "sets"
        raise DatasetFormatError(f"{path}: KonIQ CSV header needs MOS_zscore (scores file) or set (split file)")
    if "\t" in first or "," in first:
        return "maniqa"
    raise DatasetFormatError(f"{path}: not a KonIQ-10k label file (first line {first[:80]!r})")


def _read_csv_rows(path: Path, kind: str, skip_errors: bool, skipped: SkipLog | None) -> dict[str, dict]:
    rows: dict[str, dict] = {}
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        width = len(reader.fieldnames or [])
        for row in reader:
            where = f"{path} line {reader.line_num}"
            try:
                if None in row or len(row) != width or any(v is None for v in row.values()):
                    raise DatasetFormatError(f"{where}: expected {width} fields")
                parsed = _parse_scores_row(row, where, kind)
                if parsed["image_name"] in rows:
                    raise DatasetFormatError(f"{where}: duplicate image_name {parsed['image_name']!r}")
            except DatasetFormatError as exc:
                skip_or_raise(exc, where, skip_errors=skip_errors, skipped=skipped)
                continue
            parsed["line"] = where
            rows[parsed["image_name"]] = parsed
    if not rows:
        raise DatasetFormatError(f"{path}: no label rows")
    return rows


def _find_label_files(root: Path | None) -> tuple[Path | None, Path | None]:
    if root is None:
        return None, None
    dirs = [root, root / "metadata"]
    scores = first_existing(d / SCORES_CSV for d in dirs)
    sets = first_existing(d / SETS_CSV for d in dirs)
    if scores is None and sets is None:
        maniqa = first_existing(d / MANIQA_LIST for d in dirs)
        return maniqa, None
    return scores, sets


def load_koniq10k_labels(
    scores_csv: str | Path | None = None,
    split_csv: str | Path | None = None,
    *,
    root: str | Path | None = None,
    skip_errors: bool = False,
    skipped: SkipLog | None = None,
) -> list[dict]:
    """Parse KonIQ-10k labels (no images needed): one dict per image, in file order.

    Keys: ``image_name, mos, mos_std, mos_zscore, distribution, num_ratings, set, line`` where
    ``set`` is the official split (``training``/``validation``/``test``) or ``None`` when no
    split file was given, and ``line`` names the file and line the row came from. ``scores_csv`` may be any of the three formats in the module
    docstring; ``split_csv`` is a CSV with ``image_name`` and ``set`` columns (the official
    ``koniq10k_distributions_sets.csv``). Without explicit paths they are looked up in
    ``root`` and ``root/metadata``.
    """
    root_path = Path(root) if root is not None else None
    found_scores, found_sets = _find_label_files(root_path)
    scores_path = Path(scores_csv) if scores_csv is not None else (found_scores or found_sets)
    if scores_path is None:
        raise DatasetFormatError(
            f"no KonIQ-10k label file in {root_path} (looked for {SCORES_CSV}, {SETS_CSV}, {MANIQA_LIST}, "
            "also under metadata/)"
        )
    split_path = Path(split_csv) if split_csv is not None else None
    if split_path is None and found_sets is not None and found_sets != scores_path:
        split_path = found_sets

    kind = _sniff(scores_path)
    if kind == "maniqa":
        records = [
            {
                "image_name": name,
                "mos": mos,
                "mos_std": None,
                "mos_zscore": None,
                "distribution": None,
                "num_ratings": None,
                "set": None,
                "line": f"{scores_path}",
            }
            for name, mos in read_maniqa_label_list(scores_path).items()
        ]
    else:
        records = list(_read_csv_rows(scores_path, kind, skip_errors, skipped).values())

    if split_path is not None:
        split_of = _read_split_column(split_path)
        kept = []
        for rec in records:
            value = split_of.get(rec["image_name"])
            if value is None:
                handle_bad_item(
                    f"{rec['line']}",
                    f"image {rec['image_name']!r} has no entry in split file {split_path}",
                    skip_errors=skip_errors,
                    skipped=skipped,
                )
                continue
            rec["set"] = value
            kept.append(rec)
        records = kept
    for rec in records:
        if rec["set"] is not None and rec["set"] not in OFFICIAL_SPLITS:
            handle_bad_item(
                rec["line"],
                f"unknown set {rec['set']!r} (expected one of {sorted(OFFICIAL_SPLITS)})",
                skip_errors=skip_errors,
                skipped=skipped,
            )
            rec["skip"] = True
    return [r for r in records if not r.pop("skip", False)]


def _read_split_column(path: Path) -> dict[str, str]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or "image_name" not in reader.fieldnames or "set" not in reader.fieldnames:
            raise DatasetFormatError(f"{path}: split file needs 'image_name' and 'set' columns")
        out: dict[str, str] = {}
        for row in reader:
            name, value = (row.get("image_name") or "").strip(), (row.get("set") or "").strip()
            if not name or not value:
                raise DatasetFormatError(f"{path} line {reader.line_num}: empty image_name or set")
            out[name] = value
    return out


def _resolve_image_dir(root: Path, image_dir: str | Path | None) -> Path:
    if image_dir is not None:
        folder = Path(image_dir)
        folder = folder if folder.is_absolute() else root / folder
    else:
        folder = first_existing(root / name for name in IMAGE_DIR_CANDIDATES) or root
    if not folder.is_dir():
        raise DatasetFormatError(f"KonIQ-10k image folder not found: {folder}")
    return folder


def load_koniq10k(
    root: str | Path,
    scores_csv: str | Path | None = None,
    split_csv: str | Path | None = None,
    image_dir: str | Path | None = None,
    *,
    check_images: ImageCheck = "header",
    skip_errors: bool = False,
    skipped: SkipLog | None = None,
    split_seed: int = 0,
    split_ratios: Sequence[float] = (0.7, 0.1, 0.2),
):
    """KonIQ-10k as a ``DatasetDict`` with ``train``/``validation``/``test`` splits.

    ``root`` holds the images (in ``1024x768/``, ``512x384/``, ``images/`` or ``root`` itself,
    unless ``image_dir`` says otherwise) and, unless given explicitly, the label files.
    The official ``set`` column decides the splits; when no split information exists (e.g.
    only MANIQA's list), images are split at random with ``split_ratios`` and ``split_seed``
    (KonIQ has one image per content, so an image-level split leaks nothing).
    An image named in a label file but missing or unreadable raises
    :class:`DatasetFormatError` naming it, or is skipped and logged with ``skip_errors``.
    """
    root = Path(root)
    records = load_koniq10k_labels(scores_csv, split_csv, root=root, skip_errors=skip_errors, skipped=skipped)
    folder = _resolve_image_dir(root, image_dir)
    paths = [str(folder / rec["image_name"]) for rec in records]
    keep = check_image_files(
        paths,
        check_images,
        skip_errors=skip_errors,
        skipped=skipped,
        labels=[rec["line"] for rec in records],
        desc="checking KonIQ-10k images",
    )
    records = [dict(rec, image=path) for rec, path, k in zip(records, paths, keep) if k]
    if any(rec["set"] is None for rec in records):
        assignment = seeded_group_split([r["image_name"] for r in records], split_ratios, split_seed)
        by_split: dict[str, list[dict]] = {"train": [], "validation": [], "test": []}
        for rec in records:
            by_split[assignment[rec["image_name"]]].append(rec)
    else:
        by_split = {name: [] for name in OFFICIAL_SPLITS.values()}
        for rec in records:
            by_split[OFFICIAL_SPLITS[rec["set"]]].append(rec)
    return split_dict(by_split, koniq10k_features())
