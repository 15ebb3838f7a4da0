"""Which images ``hf-fiqa embed`` reads, and under which identity: folder, identity folder or CSV.

Layouts
-------
``images``      every image under a folder, recursively; identity left empty.
``identities``  ``root/<identity>/<image>``: the sub-folder name is the identity.
``csv``         a CSV with a ``path`` column (relative paths are relative to the CSV's folder)
                and an optional ``identity`` column, as in ``labels.csv`` of the shared data.
``auto``        ``csv`` for a file; for a folder ``identities`` when it holds no image directly
                and every image sits exactly one sub-folder deep, else ``images``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from ..io import IMAGE_SUFFIXES, scan_images

LAYOUTS = ("auto", "images", "identities", "csv")


@dataclass(frozen=True)
class InputItem:
    """One image to embed. ``path`` is what the results record; ``file`` is where it is read from."""

    path: str
    identity: str
    file: Path
    skip: str = ""  # why a folder scan left this entry out (it still gets a row, with this as its error)


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()


def _from_csv(source: Path) -> list[InputItem]:
    try:
        with open(source, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            fields = {name.strip().lower(): name for name in (reader.fieldnames or [])}
            if "path" not in fields:
                raise ValueError(f"{source}: CSV needs a 'path' column (and optionally 'identity'); header is {reader.fieldnames}")
            path_col, id_col = fields["path"], fields.get("identity")
            items = []
            for record in reader:
                value = (record.get(path_col) or "").strip()
                file = Path(value)
                if not file.is_absolute():
                    file = source.parent / file
                identity = (record.get(id_col) or "").strip() if id_col else ""
                items.append(InputItem(path=value, identity=identity, file=file))
            return items
    except UnicodeDecodeError as exc:
        raise ValueError(f"{source}: not a UTF-8 CSV file ({exc})") from None


def list_inputs(source: str | Path, layout: str = "auto", exclude: tuple = ()) -> tuple[list[InputItem], str]:
    """Return ``(items in a stable order, layout used)`` for ``source``.

    Folder listings are sorted, so repeated runs see the same rows in the same order (what
    resuming relies on). Entries a folder scan leaves out (unsupported formats such as ``.heic``,
    symlink loops, unreadable sub-folders) are items too, with ``skip`` saying why, so each gets a
    row. ``exclude``: paths (the command's own output) neither listed nor reported. Raises
    ``ValueError`` naming ``source`` when it cannot be used.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if isinstance(source, str) and "://" in source[:16]:
        raise ValueError(f"input {source}: URLs are not supported, download the files first")
    source = Path(source)
    if not source.exists():
        raise ValueError(f"input {source} does not exist")
    if source.is_file():
        if layout not in ("auto", "csv"):
            raise ValueError(f"input {source} is a file, so layout must be 'csv' (got {layout!r})")
        return _from_csv(source), "csv"
    if layout == "csv":
        raise ValueError(f"input {source} is a folder, not a CSV file")
    skipped: list[tuple[str, str]] = []
    images = scan_images(source, skipped, exclude)
    relative = [p.relative_to(source) for p in images]
    if layout == "auto":
        layout = "identities" if relative and all(len(r.parts) == 2 for r in relative) else "images"
    if layout == "identities":
        bad = [str(r) for r in relative if len(r.parts) != 2]
        if bad:
            raise ValueError(f"input {source}: identity layout needs root/<identity>/<image>, but found {bad[:5]}")
        items = [InputItem(path=r.as_posix(), identity=r.parts[0], file=p) for r, p in zip(relative, images)]
    else:
        items = [InputItem(path=r.as_posix(), identity="", file=p) for r, p in zip(relative, images)]
    for path, reason in skipped:
        rel = Path(path).relative_to(source) if Path(path) != source else Path(".")
        identity = rel.parts[0] if layout == "identities" and len(rel.parts) == 2 else ""
        items.append(InputItem(path=rel.as_posix(), identity=identity, file=Path(path), skip=reason))
    items.sort(key=lambda item: item.path)
    return items, layout
