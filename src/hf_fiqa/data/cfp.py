"""CFP (Celebrities in Frontal-Profile; Sengupta et al., WACV 2016) as a ``Dataset`` and its verification protocol.

The folder holds ``labels.csv`` (``path, identity, name, pose, lfw_identity``) beside ``images/NNN/<pose>/NN.jpg``
and ``protocol/``: ``Pair_list_F.txt`` / ``Pair_list_P.txt`` number the frontal and profile photos (as
``../Data/Images/...``), and ``Split/{FF,FP}/NN/{same,diff}.txt`` list 10 folds of ``i,j`` pairs (FF: frontal i with
frontal j; FP: frontal i with profile j). Identities missing from ``labels.csv`` (removed from a copy, e.g.
because they are also evaluation identities elsewhere) drop their pairs, and :func:`read_cfp_pairs` says how many.

Pose is a column because it is what CFP is for: faces at every pose, so a quality model trained or judged on it
sees head turns that LFW's news photos lack.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from .common import ImageCheck, check_image_files, rows_to_dataset
from .errors import DatasetFormatError, SkipLog

POSES = ("frontal", "profile")
PROTOCOLS = ("FF", "FP")

__all__ = ["CFPPair", "PROTOCOLS", "POSES", "cfp_features", "load_cfp", "read_cfp_labels", "read_cfp_pairs"]


@dataclass(frozen=True)
class CFPPair:
    """One protocol pair: paths relative to the CFP folder, ``same`` identity or not, and its fold (1-10)."""

    fold: int
    path_a: str
    path_b: str
    same: bool


def read_cfp_labels(root: str | Path) -> list[dict]:
    """Rows of ``labels.csv``: ``{path, identity, name, pose, lfw_identity}`` (strings; lfw_identity may be '')."""
    path = Path(root) / "labels.csv"
    if not path.is_file():
        raise DatasetFormatError(f"CFP labels not found: {path}")
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        needed = {"path", "identity", "name", "pose"}
        if not reader.fieldnames or not needed <= set(reader.fieldnames):
            raise DatasetFormatError(f"{path}: needs columns {sorted(needed)}, has {reader.fieldnames}")
        rows = []
        for line, row in enumerate(reader, start=2):
            if row["pose"] not in POSES:
                raise DatasetFormatError(f"{path}:{line}: pose must be one of {POSES}, got {row['pose']!r}")
            rows.append({k: row.get(k) or "" for k in ("path", "identity", "name", "pose", "lfw_identity")})
    return rows


def cfp_features(identities: list[str]):
    from datasets import ClassLabel, Features, Image, Value

    return Features({"image": Image(), "path": Value("string"), "identity": ClassLabel(names=identities),
                     "name": Value("string"), "pose": ClassLabel(names=list(POSES)),
                     "lfw_identity": Value("string")})


def load_cfp(root: str | Path, *, check_images: ImageCheck = "none", skip_errors: bool = False,
             skipped: SkipLog | None = None):
    """The CFP photos as a ``datasets.Dataset`` (image, path, identity, name, pose, lfw_identity); a missing or
    unreadable photo (``check_images``: "none" checks existence, "header"/"decode" open it) raises, or with
    ``skip_errors`` is left out and logged in ``skipped``."""
    root = Path(root)
    rows = read_cfp_labels(root)
    for row in rows:
        row["image"] = str(root / row["path"])
    keep = check_image_files([row["image"] for row in rows], check_images, skip_errors=skip_errors,
                             skipped=skipped, desc="checking CFP images")
    rows = [row for row, ok in zip(rows, keep) if ok]
    identities = sorted({row["identity"] for row in rows})
    return rows_to_dataset(rows, cfp_features(identities))


def _pair_list(path: Path) -> dict[int, str]:
    if not path.is_file():
        raise DatasetFormatError(f"CFP protocol file not found: {path}")
    out = {}
    for line, text in enumerate(path.read_text().splitlines(), start=1):
        if not text.strip():
            continue
        number, _, name = text.strip().partition(" ")
        parts = name.replace("\\", "/").split("/")
        if not number.isdigit() or len(parts) < 3:
            raise DatasetFormatError(f"{path}:{line}: expected 'N ../Data/Images/NNN/<pose>/NN.jpg', got {text!r}")
        out[int(number)] = "images/" + "/".join(parts[-3:])
    return out


def read_cfp_pairs(root: str | Path, protocol: str = "FP") -> tuple[list[CFPPair], int]:
    """``(pairs, dropped)``: the protocol's pairs over the photos ``labels.csv`` lists, and how many pairs named a
    photo it does not list (a removed identity)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    root = Path(root)
    listed = {row["path"] for row in read_cfp_labels(root)}
    frontal = _pair_list(root / "protocol" / "Pair_list_F.txt")
    second = frontal if protocol == "FF" else _pair_list(root / "protocol" / "Pair_list_P.txt")
    pairs, dropped = [], 0
    folds = sorted((root / "protocol" / "Split" / protocol).glob("[0-9]*"))
    if not folds:
        raise DatasetFormatError(f"no folds under {root / 'protocol' / 'Split' / protocol}")
    for fold_dir in folds:
        for kind in ("same", "diff"):
            path = fold_dir / f"{kind}.txt"
            if not path.is_file():
                raise DatasetFormatError(f"CFP protocol file not found: {path}")
            for line, text in enumerate(path.read_text().splitlines(), start=1):
                if not text.strip():
                    continue
                try:
                    i, j = (int(v) for v in text.split(","))
                    a, b = frontal[i], second[j]
                except (ValueError, KeyError):
                    raise DatasetFormatError(f"{path}:{line}: expected 'i,j' numbers of the pair lists, got {text!r}") from None
                if a in listed and b in listed:
                    pairs.append(CFPPair(int(fold_dir.name), a, b, kind == "same"))
                else:
                    dropped += 1
    return pairs, dropped
