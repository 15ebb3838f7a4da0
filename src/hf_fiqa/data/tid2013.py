"""TID2013 (25 reference images x 24 distortions x 5 levels, MOS 0-9) as a ``DatasetDict``.

Official layout::

    root/mos_with_names.txt          3000 lines "MOS filename", e.g. "5.51429 i01_01_1.bmp"
    root/distorted_images/iXX_YY_Z.bmp   XX reference 01-25, YY distortion 01-24, Z level 1-5
    root/reference_images/IXX.BMP

File-name case differs between the label file, the archive and its re-packs (``i01_01_1.bmp``
vs ``I01_01_1.BMP``, ``I25.BMP``), so every lookup here is case-insensitive.

Splits are made *by reference image*: all 120 distortions of one content land in the same
split, otherwise a model would be tested on content it was trained on. The assignment is a
seeded shuffle of the sorted reference ids, so it is reproducible across machines.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

from .common import CaseInsensitiveDir, ImageCheck, check_image_files, seeded_group_split, split_dict
from .errors import DatasetFormatError, SkipLog, handle_bad_item, skip_or_raise

LABEL_FILE = "mos_with_names.txt"
DISTORTED_DIR = "distorted_images"
REFERENCE_DIR = "reference_images"

# The 24 distortion types in the order of their official numbers 01..24 (TID2013 readme).
DISTORTION_NAMES = (
    "additive gaussian noise",
    "additive noise in color components",  # "...is more intensive than additive noise in the luminance component"
    "spatially correlated noise",
    "masked noise",
    "high frequency noise",
    "impulse noise",
    "quantization noise",
    "gaussian blur",
    "image denoising",
    "jpeg compression",
    "jpeg2000 compression",
    "jpeg transmission errors",
    "jpeg2000 transmission errors",
    "non eccentricity pattern noise",
    "local block-wise distortions of different intensity",
    "mean shift (intensity shift)",
    "contrast change",
    "change of color saturation",
    "multiplicative gaussian noise",
    "comfort noise",
    "lossy compression of noisy images",
    "image color quantization with dither",
    "chromatic aberrations",
    "sparse sampling and reconstruction",
)
NUM_REFERENCES = 25
NUM_LEVELS = 5
_NAME_RE = re.compile(r"^i(\d{2})_(\d{2})_(\d)\.bmp$", re.IGNORECASE)


def tid2013_features(embed_reference: bool = False):
    from datasets import ClassLabel, Features, Image, Value

    return Features(
        {
            "image": Image(),
            "image_name": Value("string"),
            "reference_image": Image() if embed_reference else Value("string"),
            "reference_id": Value("int32"),
            "distortion": ClassLabel(names=list(DISTORTION_NAMES)),
            "level": Value("int32"),
            "mos": Value("float64"),
        }
    )


def parse_tid2013_name(name: str) -> tuple[int, int, int]:
    """``'i03_17_4.bmp'`` -> ``(reference 3, distortion 17, level 4)``; any case accepted."""
    match = _NAME_RE.match(name.strip())
    if not match:
        raise ValueError(f"not a TID2013 distorted-image name (iXX_YY_Z.bmp): {name!r}")
    ref, dist, level = (int(g) for g in match.groups())
    if not (1 <= ref <= NUM_REFERENCES and 1 <= dist <= len(DISTORTION_NAMES) and 1 <= level <= NUM_LEVELS):
        raise ValueError(f"TID2013 name out of range (ref 1-25, distortion 1-24, level 1-5): {name!r}")
    return ref, dist, level


def load_tid2013_labels(
    label_file: str | Path, *, skip_errors: bool = False, skipped: SkipLog | None = None
) -> list[dict]:
    """Parse ``mos_with_names.txt``: dicts with image_name, reference_id, distortion (0-based), level, mos."""
    label_file = Path(label_file)
    if not label_file.is_file():
        raise DatasetFormatError(f"TID2013 label file not found: {label_file}")
    rows: list[dict] = []
    seen: set[str] = set()
    with open(label_file, encoding="latin-1") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{label_file} line {lineno}"
            try:
                parts = line.split()
                if len(parts) != 2:
                    raise DatasetFormatError(f"{where}: expected 'MOS filename', got {line.strip()!r}")
                try:
                    mos = float(parts[0])
                except ValueError:
                    raise DatasetFormatError(f"{where}: MOS is not a number: {parts[0]!r}") from None
                if not 0.0 <= mos <= 9.0:
                    raise DatasetFormatError(f"{where}: MOS {mos} outside TID2013's 0-9 range")
                try:
                    ref, dist, level = parse_tid2013_name(parts[1])
                except ValueError as exc:
                    raise DatasetFormatError(f"{where}: {exc}") from None
                if parts[1].lower() in seen:
                    raise DatasetFormatError(f"{where}: duplicate image {parts[1]!r}")
            except DatasetFormatError as exc:
                skip_or_raise(exc, where, skip_errors=skip_errors, skipped=skipped)
                continue
            seen.add(parts[1].lower())
            rows.append(
                {"image_name": parts[1], "reference_id": ref, "distortion": dist - 1, "level": level, "mos": mos,
                 "line": where}
            )
    if not rows:
        raise DatasetFormatError(f"{label_file}: no label lines")
    return rows


def tid2013_reference_splits(seed: int = 0, split_ratios: Sequence[float] = (0.6, 0.2, 0.2)) -> dict[int, str]:
    """``{reference_id: split}`` for all 25 TID2013 contents - the split :func:`load_tid2013` uses."""
    groups = [f"{i:02d}" for i in range(1, NUM_REFERENCES + 1)]
    return {int(k): v for k, v in seeded_group_split(groups, split_ratios, seed).items()}


def load_tid2013(
    root: str | Path,
    *,
    seed: int = 0,
    split_ratios: Sequence[float] = (0.6, 0.2, 0.2),
    embed_reference: bool = False,
    check_images: ImageCheck = "header",
    skip_errors: bool = False,
    skipped: SkipLog | None = None,
):
    """TID2013 as ``DatasetDict`` train/validation/test, split by reference image.

    ``split_ratios`` are the shares of the 25 reference contents (default 15/5/5);
    ``seed`` fixes which. ``reference_image`` is the reference file path relative to ``root``
    (cheap: 25 files shared by 3000 rows) or, with ``embed_reference=True``, an ``Image``
    (publishing then stores each reference once per row - ~1.7 GB of BMP copies).
    """
    root = Path(root)
    rows = load_tid2013_labels(root / LABEL_FILE, skip_errors=skip_errors, skipped=skipped)
    distorted = CaseInsensitiveDir(root / DISTORTED_DIR)
    references = CaseInsensitiveDir(root / REFERENCE_DIR)
    if len(distorted) == 0:
        raise DatasetFormatError(f"no TID2013 distorted images in {root / DISTORTED_DIR}")

    kept: list[dict] = []
    for row in rows:
        image = distorted.get(row["image_name"])
        ref_name = f"i{row['reference_id']:02d}.bmp"
        ref = references.get(ref_name)
        if image is None:
            handle_bad_item(row["line"], f"image {row['image_name']!r} not found in {root / DISTORTED_DIR}",
                            skip_errors=skip_errors, skipped=skipped)
            continue
        if ref is None:
            handle_bad_item(row["line"], f"reference {ref_name.upper()} not found in {root / REFERENCE_DIR}",
                            skip_errors=skip_errors, skipped=skipped)
            continue
        kept.append(dict(row, image=str(image), ref_path=str(ref)))

    keep = check_image_files(
        [r["image"] for r in kept], check_images, skip_errors=skip_errors, skipped=skipped,
        labels=[r["line"] for r in kept], desc="checking TID2013 images",
    )
    kept = [r for r, k in zip(kept, keep) if k]
    # A broken reference drops its distorted images too (logged once, for the reference file).
    ref_paths = sorted({r["ref_path"] for r in kept})
    ref_ok = dict(zip(ref_paths, check_image_files(
        ref_paths, check_images, skip_errors=skip_errors, skipped=skipped, desc="checking TID2013 references"
    )))
    kept = [r for r in kept if ref_ok[r["ref_path"]]]
    for r in kept:
        r["reference_image"] = r["ref_path"] if embed_reference else Path(r["ref_path"]).relative_to(root).as_posix()

    # Assign all 25 contents, not just those present, so a missing file never reshuffles the splits.
    assignment = tid2013_reference_splits(seed, split_ratios)
    by_split: dict[str, list[dict]] = {"train": [], "validation": [], "test": []}
    for r in kept:
        by_split[assignment[r["reference_id"]]].append(r)
    return split_dict(by_split, tid2013_features(embed_reference))
