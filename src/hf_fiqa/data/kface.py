"""AIHub K-Face ("Korean facial image" dataset, KIST) as a ``Dataset``.

Layout assumed (taken from public code that reads the AIHub release - e.g. the
insightKface/mixface loaders - since the AIHub documentation is not openly available)::

    root/High/19062421/S001/L1/E01/C1.jpg     resolution tier / identity / accessory /
    root/High/19062421/S001/L1/E01/C1.txt     lighting / expression / camera (+ box file)

* resolution tiers are top-level folders ``High``, ``Middle``, ``Low`` (any case); ``root``
  may also be one tier folder itself, or an identity parent when ``resolution=`` is given;
* identities are folders of digits (400 of them, ``19062421`` ... ``19101513``);
* accessories ``S001``-``S006``, lighting ``L1``-``L30``, expressions ``E01``-``E03``,
  cameras (pose) ``C1``-``C20``; images ``C<n>.jpg``;
* the box file ``C<n>.txt`` is optional (public loaders find it for ``S001`` at least).
  Its line 8 holds the face box as ``left top width height`` (tab-separated integers); lines
  9-12 hold the right-eye, left-eye, nose and mouth boxes, which are not loaded. Lines 1-7
  carry capture information whose content we have not been able to check, and are ignored.

Parsing is strict because the layout is an assumption: any other folder or file name in
the hierarchy, or a box line that is not four integers, raises :class:`DatasetFormatError`
naming the path (or, with ``skip_errors``, is logged and skipped). Hidden files are ignored.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .common import ImageCheck, check_image_files, list_feature, rows_to_dataset
from .errors import DatasetFormatError, SkipLog, handle_bad_item

RESOLUTIONS = ("High", "Middle", "Low")
ACCESSORIES = tuple(f"S{i:03d}" for i in range(1, 7))
LIGHTINGS = tuple(f"L{i}" for i in range(1, 31))
EXPRESSIONS = tuple(f"E{i:02d}" for i in range(1, 4))
CAMERAS = tuple(f"C{i}" for i in range(1, 21))
BBOX_LINE = 8  # 1-based line of the face box in C<n>.txt

_IDENTITY_RE = re.compile(r"^\d+$")
_CAMERA_FILE_RE = re.compile(r"^(C\d+)\.(jpg|jpeg|txt)$", re.IGNORECASE)


def kface_features(identities: list[str]):
    from datasets import ClassLabel, Features, Image, Value

    return Features(
        {
            "image": Image(),
            "path": Value("string"),
            "identity": ClassLabel(names=identities),
            "accessory": ClassLabel(names=list(ACCESSORIES)),
            "lighting": ClassLabel(names=list(LIGHTINGS)),
            "expression": ClassLabel(names=list(EXPRESSIONS)),
            "camera": ClassLabel(names=list(CAMERAS)),
            "resolution": ClassLabel(names=list(RESOLUTIONS)),
            "bbox": list_feature(Value("int32"), length=4),  # x, y, width, height; None without a .txt
        }
    )


def parse_kface_bbox(path: str | Path) -> list[int]:
    """The face box ``[x, y, w, h]`` from line 8 of a K-Face ``C<n>.txt`` file."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise DatasetFormatError(f"{path}: cannot read box file ({exc})") from None
    if len(lines) < BBOX_LINE:
        raise DatasetFormatError(
            f"{path}: box file has {len(lines)} lines, the face box is expected on line {BBOX_LINE}"
        )
    fields = lines[BBOX_LINE - 1].split()
    try:
        if len(fields) != 4:
            raise ValueError
        box = [int(float(v)) for v in fields]
    except ValueError:
        raise DatasetFormatError(
            f"{path} line {BBOX_LINE}: expected 'left top width height', got {lines[BBOX_LINE - 1]!r}"
        ) from None
    if box[2] <= 0 or box[3] <= 0:
        raise DatasetFormatError(f"{path} line {BBOX_LINE}: box has non-positive size {box}")
    return box


def _visible(entries):
    return sorted((e for e in entries if not e.name.startswith(".")), key=lambda e: e.name)


def _canonical(name: str, allowed: tuple[str, ...]) -> str | None:
    upper = name.upper()
    for value in allowed:
        if value.upper() == upper:
            return value
    return None


def _tier_folders(root: Path, resolution: str | None) -> list[tuple[str, Path]]:
    if not root.is_dir():
        raise DatasetFormatError(f"K-Face folder not found: {root}")
    tiers = [(t, Path(e.path)) for e in _visible(os.scandir(root)) if e.is_dir()
             for t in [_canonical(e.name, RESOLUTIONS)] if t]
    if tiers:
        return tiers
    own = _canonical(root.name, RESOLUTIONS)
    if own:
        return [(own, root)]
    if resolution is None:
        raise DatasetFormatError(
            f"{root}: no High/Middle/Low folders and the folder is not one; pass resolution= "
            f"({'/'.join(RESOLUTIONS)}) if it directly holds identity folders"
        )
    tier = _canonical(resolution, RESOLUTIONS)
    if tier is None:
        raise ValueError(f"resolution must be one of {RESOLUTIONS}, got {resolution!r}")
    return [(tier, root)]


def scan_kface(
    root: str | Path,
    *,
    resolution: str | None = None,
    resolutions: tuple[str, ...] | None = None,
    skip_errors: bool = False,
    skipped: SkipLog | None = None,
) -> list[dict]:
    """Walk the K-Face tree and return one row dict per image (no image decoding)."""
    root = Path(root)
    rows: list[dict] = []
    wanted = None if resolutions is None else {(_canonical(r, RESOLUTIONS) or r) for r in resolutions}

    def bad(path: Path, reason: str) -> None:
        handle_bad_item(str(path), reason, skip_errors=skip_errors, skipped=skipped)

    def subdirs(folder: Path, allowed: tuple[str, ...] | None, what: str) -> list[tuple[str, Path]]:
        out = []
        for entry in _visible(os.scandir(folder)):
            path = Path(entry.path)
            if not entry.is_dir():
                bad(path, f"unexpected file where {what} folders were expected")
                continue
            if allowed is None:
                if not _IDENTITY_RE.match(entry.name):
                    bad(path, "identity folder name is not numeric (expected e.g. 19062421)")
                    continue
                out.append((entry.name, path))
                continue
            value = _canonical(entry.name, allowed)
            if value is None:
                bad(path, f"unexpected {what} folder (expected {allowed[0]}..{allowed[-1]})")
                continue
            out.append((value, path))
        return out

    for tier, tier_dir in _tier_folders(root, resolution):
        if wanted is not None and tier not in wanted:
            continue
        for identity, id_dir in subdirs(tier_dir, None, "identity"):
            for accessory, acc_dir in subdirs(id_dir, ACCESSORIES, "accessory"):
                for lighting, light_dir in subdirs(acc_dir, LIGHTINGS, "lighting"):
                    for expression, expr_dir in subdirs(light_dir, EXPRESSIONS, "expression"):
                        images: dict[str, Path] = {}
                        boxes: dict[str, Path] = {}
                        for entry in _visible(os.scandir(expr_dir)):
                            path = Path(entry.path)
                            match = _CAMERA_FILE_RE.match(entry.name)
                            camera = _canonical(match.group(1), CAMERAS) if match else None
                            if not entry.is_file() or camera is None:
                                bad(path, "unexpected entry (expected C1..C20 .jpg/.txt files)")
                                continue
                            target = boxes if match.group(2).lower() == "txt" else images
                            if camera in target:
                                bad(path, f"second file for camera {camera} (also {target[camera].name})")
                                continue
                            target[camera] = path
                        for camera, box_path in boxes.items():
                            if camera not in images:
                                bad(box_path, "box file without its image")
                        for camera in sorted(images, key=CAMERAS.index):
                            image_path = images[camera]
                            bbox = None
                            if camera in boxes:
                                try:
                                    bbox = parse_kface_bbox(boxes[camera])
                                except DatasetFormatError as exc:
                                    handle_bad_item(str(image_path), str(exc), skip_errors=skip_errors,
                                                    skipped=skipped)
                                    continue
                            rows.append(
                                {
                                    "image": str(image_path),
                                    "path": image_path.relative_to(root).as_posix(),
                                    "identity": identity,
                                    "accessory": ACCESSORIES.index(accessory),
                                    "lighting": LIGHTINGS.index(lighting),
                                    "expression": EXPRESSIONS.index(expression),
                                    "camera": CAMERAS.index(camera),
                                    "resolution": RESOLUTIONS.index(tier),
                                    "bbox": bbox,
                                }
                            )
    if not rows:
        raise DatasetFormatError(f"no K-Face images found under {root}")
    return rows


def load_kface(
    root: str | Path,
    *,
    resolution: str | None = None,
    resolutions: tuple[str, ...] | None = None,
    check_images: ImageCheck = "header",
    skip_errors: bool = False,
    skipped: SkipLog | None = None,
):
    """K-Face under ``root`` as one ``Dataset`` (K-Face has no official split).

    ``resolutions`` limits the tiers read (e.g. ``("High",)``); ``resolution`` names the
    tier when ``root`` directly holds identity folders. ``identity`` is a ``ClassLabel`` whose
    names are the K-Face ids found, sorted.
    """
    rows = scan_kface(root, resolution=resolution, resolutions=resolutions, skip_errors=skip_errors, skipped=skipped)
    keep = check_image_files([r["image"] for r in rows], check_images, skip_errors=skip_errors, skipped=skipped,
                             desc="checking K-Face images")
    rows = [r for r, k in zip(rows, keep) if k]
    identities = sorted({r["identity"] for r in rows})
    return rows_to_dataset(rows, kface_features(identities))
