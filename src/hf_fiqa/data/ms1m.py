"""MS-Celeb-1M as packed for ArcFace training (MS1MV2 "faces_emore" and kin) as HF datasets.

Folder layout (insightface "Dataset Zoo")::

    root/train.rec, root/train.idx   MXNet RecordIO (see :mod:`hf_fiqa.data.recordio`)
    root/property                    "num_classes,height,width", e.g. "85742,112,112"
    root/lfw.bin, cfp_fp.bin, ...    verification pairs (see :mod:`hf_fiqa.data.verification`)

Record 0 is a header whose ``IRHeader`` has ``flag > 0`` and labels ``(a, b)``: records
``1..a-1`` are the face images (label = identity) and records ``a..b-1`` are one record per
identity whose labels give that identity's image-key range. For MS1MV2, ``a = 5,822,654``
(5,822,653 images) and ``b - a = 85,742`` identities. Without such a header (``flag == 0``),
every indexed record is an image.

Image records carry the identity in ``label`` (a float) or ``label[0]`` (when ``flag > 0``).
The JPEG bytes are passed through untouched: nothing is decoded or re-encoded here.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Iterator, Sequence

from .errors import DatasetFormatError, SkipLog, skip_or_raise
from .recordio import RecordIOError, RecordIOReader, unpack_record

PROPERTY_FILE = "property"
PARQUET_ROW_GROUP = 100  # rows per Parquet row group: small groups keep random reads of images cheap


def read_property(path: str | Path) -> tuple[int, int, int]:
    """``property`` file -> ``(num_classes, height, width)``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise DatasetFormatError(f"MS1M property file not found: {path}") from None
    parts = [p.strip() for p in text.split(",")]
    try:
        if len(parts) != 3:
            raise ValueError
        num_classes, height, width = (int(p) for p in parts)
        if min(num_classes, height, width) <= 0:
            raise ValueError
    except ValueError:
        raise DatasetFormatError(f"{path}: expected 'num_classes,height,width', got {text[:80]!r}") from None
    return num_classes, height, width


def ms1m_features(num_classes: int):
    from datasets import ClassLabel, Features, Image, Value

    return Features({"image": Image(), "identity": ClassLabel(num_classes=num_classes), "key": Value("int64")})


class MS1MRecords:
    """The image records of an MS1M-style ``train.rec``: counts, random access, sequential reads.

    ``root`` is the folder, or the ``.rec`` file itself (then ``property`` is looked up beside it).
    ``num_classes`` overrides the ``property`` file (needed when there is none).
    """

    def __init__(self, root: str | Path, *, num_classes: int | None = None):
        root = Path(root)
        rec = root if root.suffix == ".rec" else root / "train.rec"
        folder = rec.parent
        self.reader = RecordIOReader(rec, rec.with_suffix(".idx"))
        if not self.reader.index:
            raise RecordIOError(f"{self.reader.idx_path}: index is empty")
        prop = folder / PROPERTY_FILE
        if num_classes is None:
            num_classes, self.height, self.width = read_property(prop)
        elif prop.is_file():
            _, self.height, self.width = read_property(prop)
        else:
            self.height = self.width = None
        self.num_classes = int(num_classes)
        self._image_keys, self.identity_range = self._layout()

    @property
    def rec_path(self) -> Path:
        return self.reader.rec_path

    def _layout(self) -> tuple[Sequence[int], range | None]:
        """(image keys, identity-record keys) from the header record 0, if there is one."""
        if 0 in self.reader.index:
            header, _ = unpack_record(self.reader.read(0), f"{self.rec_path}: record 0")
            if header.flag > 0:
                labels = header.label if isinstance(header.label, tuple) else (header.label,)
                if len(labels) < 2 or labels[0] != int(labels[0]) or labels[1] != int(labels[1]):
                    raise RecordIOError(f"{self.rec_path}: record 0 header labels {labels} are not an index range")
                first_identity, end = int(labels[0]), int(labels[1])
                if not 1 <= first_identity <= end:
                    raise RecordIOError(f"{self.rec_path}: record 0 header range {labels[:2]} is inverted")
                missing = [k for k in (1, first_identity - 1) if first_identity > 1 and k not in self.reader.index]
                if missing:
                    raise RecordIOError(
                        f"{self.rec_path}: header says images are keys 1..{first_identity - 1} but key {missing[0]} "
                        f"is not in {self.reader.idx_path}"
                    )
                return range(1, first_identity), range(first_identity, end)
        keys = self.reader.keys
        return keys, None

    def __len__(self) -> int:
        return len(self._image_keys)

    @property
    def image_keys(self) -> Sequence[int]:
        return self._image_keys

    def _decode(self, key: int, payload: bytes) -> tuple[bytes, int]:
        where = f"{self.rec_path}: record {key}"
        header, image = unpack_record(payload, where)
        label = header.label[0] if isinstance(header.label, tuple) else header.label
        if not math.isfinite(label) or label != int(label) or not 0 <= int(label) < self.num_classes:
            raise RecordIOError(f"{where}: identity label {label} is not an integer in [0, {self.num_classes})")
        if not image:
            raise RecordIOError(f"{where}: no image bytes after the IRHeader")
        return image, int(label)

    def image(self, key: int) -> tuple[bytes, int]:
        """``(JPEG bytes, identity)`` of image record ``key`` (random access)."""
        return self._decode(key, self.reader.read(key))

    def identity_images(self, identity_key: int) -> range:
        """Image keys of one identity, from its identity record (MS1MV2 layout only)."""
        if self.identity_range is None or identity_key not in self.identity_range:
            raise KeyError(f"{self.rec_path}: {identity_key} is not an identity record")
        header, _ = unpack_record(self.reader.read(identity_key), f"{self.rec_path}: record {identity_key}")
        if not isinstance(header.label, tuple) or len(header.label) < 2:
            raise RecordIOError(f"{self.rec_path}: identity record {identity_key} has no (start, end) labels")
        return range(int(header.label[0]), int(header.label[1]))

    def iter_images(
        self,
        start: int = 0,
        stop: int | None = None,
        *,
        skip_errors: bool = False,
        skipped: SkipLog | None = None,
    ) -> Iterator[dict]:
        """Rows ``{"image": {"bytes", "path"}, "identity", "key"}`` for image positions
        ``start..stop`` (positions in :attr:`image_keys`), read in key order.

        Keys in MS1M files are written in order, so reading them in key order walks the file
        front to back (sequential I/O). A corrupt record raises :class:`RecordIOError`
        naming file, key and byte offset, or with ``skip_errors`` is logged and skipped.
        """
        keys = self._image_keys[start:stop]
        index, reader = self.reader.index, self.reader
        for key in keys:
            key = int(key)
            try:
                payload, _ = reader.read_at(index[key], key)
                image, identity = self._decode(key, payload)
            except RecordIOError as exc:
                skip_or_raise(exc, f"{self.rec_path} record {key}", skip_errors=skip_errors, skipped=skipped)
                continue
            yield {"image": {"bytes": image, "path": None}, "identity": identity, "key": key}

    def shards(self, num_shards: int) -> list[tuple[int, int]]:
        """Contiguous ``(start, stop)`` position ranges splitting the images into ``num_shards``."""
        n = len(self)
        num_shards = max(1, min(num_shards, n)) if n else 1
        bounds = [round(i * n / num_shards) for i in range(num_shards + 1)]
        return [(bounds[i], bounds[i + 1]) for i in range(num_shards)]

    def fingerprint(self) -> str:
        """Changes when the files change, so ``datasets`` caches are not reused for new data."""
        parts = []
        for path in (self.reader.rec_path, self.reader.idx_path):
            st = os.stat(path)
            parts.append(f"{Path(path).resolve()}:{st.st_size}:{st.st_mtime_ns}")
        return "|".join(parts) + f"|{self.num_classes}"


def _generate(root: str, num_classes: int, shards: list, skip_errors: bool, fingerprint: str) -> Iterator[dict]:
    """Generator for ``datasets`` ``from_generator``; ``shards`` is split across workers.

    ``fingerprint`` is unused here but part of the cache key, so changed files are re-read.
    """
    records = MS1MRecords(root, num_classes=num_classes)
    try:
        for start, stop in shards:
            yield from records.iter_images(start, stop, skip_errors=skip_errors)
    finally:
        records.reader.close()


def load_ms1m(
    root: str | Path,
    streaming: bool = False,
    *,
    num_classes: int | None = None,
    num_shards: int = 64,
    num_proc: int | None = None,
    skip_errors: bool = False,
    cache_dir: str | None = None,
):
    """MS1M as a ``datasets.Dataset`` (``streaming=False``) or ``IterableDataset``.

    Columns: ``image`` (JPEG bytes, decoded lazily by ``datasets``), ``identity``
    (``ClassLabel`` with ``num_classes`` from ``property``) and ``key`` (the record key).

    ``streaming=True`` reads ``train.rec`` on the fly: nothing is copied, and the
    ``num_shards`` key ranges let a ``DataLoader`` with workers read disjoint parts.
    ``streaming=False`` copies the records into the ``datasets`` Arrow cache once (as large
    as the ``.rec``; ``num_proc`` processes), after which access is memory-mapped and random.
    With ``skip_errors`` corrupt records are logged (``hf_fiqa.data`` logger) and dropped.
    """
    import datasets

    records = MS1MRecords(root, num_classes=num_classes)
    features = ms1m_features(records.num_classes)
    gen_kwargs = {
        "root": str(records.rec_path),
        "num_classes": records.num_classes,
        "shards": records.shards(num_shards),
        "skip_errors": skip_errors,
        "fingerprint": records.fingerprint(),
    }
    records.reader.close()
    if streaming:
        return datasets.IterableDataset.from_generator(_generate, features=features, gen_kwargs=gen_kwargs)
    return datasets.Dataset.from_generator(
        _generate, features=features, gen_kwargs=gen_kwargs, num_proc=num_proc, cache_dir=cache_dir
    )
