"""Reading MXNet RecordIO files (``.rec`` + ``.idx``) without MXNet.

The face-recognition training sets (MS1MV2 "faces_emore", Glint360K, ...) ship as
``train.rec``/``train.idx`` written by dmlc-core's ``RecordIOWriter``. MXNet itself is
unmaintained and hard to install, and only a few dozen lines of it are needed, so the
format is read here with ``struct`` and ``mmap``.

File format (all integers little-endian)::

    record   := part+ ; parts chained by cflag
    part     := uint32 magic 0xced7230a
                uint32 lrec = cflag << 29 | length     (cflag 0: whole record,
                                                        1: first, 2: middle, 3: last part)
                length bytes of data, then zero padding to a multiple of 4

The writer splits a record wherever its data holds the magic word at a 4-byte-aligned
position, dropping those 4 bytes; the reader joins the parts with the magic word put back.
``train.idx`` holds lines ``key<TAB>byte offset`` of each record's first part.

A record payload produced by ``mx.recordio.pack`` starts with an ``IRHeader``
(``uint32 flag, float32 label, uint64 id, uint64 id2``); when ``flag > 0`` the scalar label
is replaced by ``flag`` float32 labels that follow the header. The rest is the image (JPEG).
"""

from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .errors import DatasetFormatError

MAGIC = 0xCED7230A
MAGIC_BYTES = struct.pack("<I", MAGIC)
_LENGTH_MASK = (1 << 29) - 1
_PART_HEADER = struct.Struct("<II")
IR_HEADER = struct.Struct("<IfQQ")


class RecordIOError(DatasetFormatError):
    """A RecordIO file is malformed; the message names the file, record and byte offset."""


@dataclass(frozen=True)
class IRHeader:
    """MXNet's image-record header. ``label`` is a float, or a tuple when ``flag > 0``."""

    flag: int
    label: float | tuple[float, ...]
    id: int
    id2: int


def unpack_record(payload: bytes, where: str = "record") -> tuple[IRHeader, bytes]:
    """Split a record payload into its :class:`IRHeader` and the remaining (image) bytes."""
    if len(payload) < IR_HEADER.size:
        raise RecordIOError(f"{where}: payload of {len(payload)} bytes is shorter than the 24-byte IRHeader")
    flag, label, id1, id2 = IR_HEADER.unpack_from(payload, 0)
    offset = IR_HEADER.size
    if flag > 0:
        end = offset + 4 * flag
        if end > len(payload):
            raise RecordIOError(f"{where}: IRHeader announces {flag} labels but the payload ends first")
        labels = struct.unpack_from(f"<{flag}f", payload, offset)
        return IRHeader(flag, tuple(float(x) for x in labels), id1, id2), payload[end:]
    return IRHeader(flag, float(label), id1, id2), payload[offset:]


class RecordIndex:
    """``key -> byte offset`` of a ``.idx`` file, held in two int64 arrays.

    MS1MV2's index has 5.9 million lines; a Python dict of them costs ~600 MB, the arrays
    ~90 MB. Lookups are direct when keys are the usual ``0..n-1`` run, binary search otherwise.
    """

    def __init__(self, keys, offsets, source: str = "<index>"):
        import numpy as np

        self.source = source
        self.keys = np.asarray(keys, dtype=np.int64)
        self.offsets = np.asarray(offsets, dtype=np.int64)
        if self.keys.shape != self.offsets.shape or self.keys.ndim != 1:
            raise ValueError("keys and offsets must be 1-D arrays of equal length")
        n = len(self.keys)
        self._base = int(self.keys[0]) if n else 0
        self._contiguous = bool(n == 0 or np.array_equal(self.keys, np.arange(self._base, self._base + n)))
        if not self._contiguous:
            self._order = np.argsort(self.keys, kind="stable")
            sorted_keys = self.keys[self._order]
            dup = np.nonzero(sorted_keys[1:] == sorted_keys[:-1])[0]
            if len(dup):
                raise RecordIOError(f"{source}: duplicate key {int(sorted_keys[dup[0]])}")
            self._sorted_keys = sorted_keys
        self._sorted_offsets = None

    def __len__(self) -> int:
        return len(self.keys)

    def __bool__(self) -> bool:
        return len(self.keys) > 0

    def __iter__(self):
        return iter(self.keys.tolist())

    def _position(self, key: int) -> int | None:
        import numpy as np

        if self._contiguous:
            pos = int(key) - self._base
            return pos if 0 <= pos < len(self.keys) else None
        i = int(np.searchsorted(self._sorted_keys, key))
        if i < len(self._sorted_keys) and self._sorted_keys[i] == key:
            return int(self._order[i])
        return None

    def __contains__(self, key: int) -> bool:
        return self._position(key) is not None

    def __getitem__(self, key: int) -> int:
        pos = self._position(key)
        if pos is None:
            raise KeyError(key)
        return int(self.offsets[pos])

    def key_at(self, offset: int) -> int | None:
        """The key whose record starts at ``offset`` (linear search; only used for error messages)."""
        import numpy as np

        hits = np.nonzero(self.offsets == offset)[0]
        return int(self.keys[hits[0]]) if len(hits) else None

    def next_offset(self, offset: int) -> int | None:
        """The smallest indexed offset greater than ``offset``."""
        import numpy as np

        if self._sorted_offsets is None:
            self._sorted_offsets = np.sort(self.offsets)
        i = int(np.searchsorted(self._sorted_offsets, offset, side="right"))
        return int(self._sorted_offsets[i]) if i < len(self._sorted_offsets) else None


def _parse_index_slowly(idx_path: Path) -> tuple[list[int], list[int]]:
    """Line-by-line parse, used to name the bad line when the fast parser fails."""
    keys: list[int] = []
    offsets: list[int] = []
    with open(idx_path, encoding="ascii", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            parts = line.split()
            try:
                if len(parts) != 2:
                    raise ValueError
                key, offset = int(parts[0]), int(parts[1])
                if offset < 0:
                    raise ValueError
            except ValueError:
                raise RecordIOError(
                    f"{idx_path} line {lineno}: expected 'key<TAB>offset', got {line.strip()!r}"
                ) from None
            keys.append(key)
            offsets.append(offset)
    return keys, offsets


def read_index(idx_path: str | Path) -> RecordIndex:
    """Parse a ``.idx`` file (lines ``key<TAB>offset``) into a :class:`RecordIndex`."""
    import numpy as np
    import pandas as pd

    idx_path = Path(idx_path)
    if not idx_path.is_file():
        raise RecordIOError(f"RecordIO index not found: {idx_path}")
    if idx_path.stat().st_size == 0:
        return RecordIndex([], [], str(idx_path))
    try:
        table = pd.read_csv(idx_path, sep=r"\s+", header=None, names=["key", "offset"], dtype=np.int64,
                            skip_blank_lines=True)
        keys, offsets = table["key"].to_numpy(), table["offset"].to_numpy()
        if (offsets < 0).any():
            raise ValueError("negative offset")
    except (ValueError, TypeError, pd.errors.ParserError):
        keys, offsets = _parse_index_slowly(idx_path)  # raises, naming the line
    return RecordIndex(keys, offsets, str(idx_path))


class RecordIOReader:
    """Random and sequential access to a ``.rec`` file (memory-mapped, read-only).

    ``read(key)`` needs the ``.idx`` (looked up next to the ``.rec`` when not given);
    ``scan`` walks the file from a byte offset and works without one. An instance is for one
    thread; pickling it (e.g. into ``datasets`` worker processes) re-opens the file there.
    """

    def __init__(self, rec_path: str | Path, idx_path: str | Path | None = None):
        self.rec_path = Path(rec_path)
        if not self.rec_path.is_file():
            raise RecordIOError(f"RecordIO file not found: {self.rec_path}")
        if idx_path is None and self.rec_path.with_suffix(".idx").is_file():
            idx_path = self.rec_path.with_suffix(".idx")
        self.idx_path = Path(idx_path) if idx_path is not None else None
        self.index = read_index(self.idx_path) if self.idx_path is not None else RecordIndex([], [], "<no index>")
        self._file = open(self.rec_path, "rb")
        self.size = os.fstat(self._file.fileno()).st_size
        self._mm = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ) if self.size else None

    # -- lifecycle -------------------------------------------------------------------
    def close(self) -> None:
        if self._mm is not None:
            self._mm.close()
            self._mm = None
        self._file.close()

    def __enter__(self) -> "RecordIOReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self):  # a mmap cannot be pickled: re-open in the receiving process
        return {"rec_path": self.rec_path, "idx_path": self.idx_path}

    def __setstate__(self, state):
        self.__init__(state["rec_path"], state["idx_path"])

    # -- access ----------------------------------------------------------------------
    @property
    def keys(self):
        """Record keys in index-file order (an int64 numpy array)."""
        return self.index.keys

    def __len__(self) -> int:
        return len(self.index)

    def _fail(self, label: object, offset: int, reason: str) -> RecordIOError:
        return RecordIOError(f"{self.rec_path}: record {label} at byte offset {offset}: {reason}")

    def read_at(self, offset: int, label: object = "?") -> tuple[bytes, int]:
        """Read the record starting at ``offset``; return ``(payload, offset of the next record)``.

        ``label`` (the key, or a scan position) only appears in error messages.
        """
        mm, size = self._mm, self.size
        pos = offset
        parts: list[bytes] = []
        while True:
            if mm is None or pos + 8 > size:
                left = max(size - pos, 0)
                raise self._fail(label, pos, f"truncated: part header needs 8 bytes, file has {left} left")
            magic, lrec = _PART_HEADER.unpack_from(mm, pos)
            if magic != MAGIC:
                raise self._fail(label, pos, f"bad magic 0x{magic:08x} (expected 0x{MAGIC:08x})")
            cflag, length = lrec >> 29, lrec & _LENGTH_MASK
            if parts and cflag not in (2, 3):
                raise self._fail(label, pos, f"continuation part has cflag {cflag} (expected 2 or 3)")
            if not parts and cflag not in (0, 1):
                raise self._fail(label, pos, f"record starts with cflag {cflag} (a middle/last part)")
            start = pos + 8
            padded = (length + 3) & ~3
            if start + padded > size:
                raise self._fail(
                    label, pos,
                    f"truncated: part of {length} bytes needs {8 + padded} bytes with padding, "
                    f"file has {size - pos} left",
                )
            parts.append(mm[start : start + length])
            pos = start + padded
            if cflag in (0, 3):
                break
        payload = parts[0] if len(parts) == 1 else MAGIC_BYTES.join(parts)
        return payload, pos

    def read(self, key: int) -> bytes:
        """The payload of record ``key`` (random access through the index)."""
        if not self.index:
            raise RecordIOError(f"{self.rec_path}: random access needs an index (.idx) file")
        try:
            offset = self.index[key]
        except KeyError:
            raise KeyError(f"{self.rec_path}: no record with key {key} in {self.idx_path}") from None
        return self.read_at(offset, key)[0]

    def next_record_offset(self, offset: int) -> int | None:
        """Where to resume after a corrupt record at ``offset``: the next indexed offset, or
        else the next 4-byte-aligned magic word in the file (``None`` at end of file)."""
        nxt = self.index.next_offset(offset) if self.index else None
        if nxt is not None:
            return nxt
        if self._mm is None:
            return None
        pos = (offset + 4) & ~3
        while True:
            pos = self._mm.find(MAGIC_BYTES, pos)
            if pos < 0:
                return None
            if pos % 4 == 0:
                return pos
            pos += 1

    def scan(self, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, bytes]]:
        """Yield ``(offset, payload)`` for the records from byte ``start`` up to ``stop``, in file order."""
        end = self.size if stop is None else min(stop, self.size)
        pos, ordinal = start, 0
        if self._mm is not None and hasattr(mmap, "MADV_SEQUENTIAL") and end > start:
            aligned = start - start % mmap.PAGESIZE
            try:  # a hint for kernel read-ahead; harmless if refused
                self._mm.madvise(mmap.MADV_SEQUENTIAL, aligned, end - aligned)
            except (OSError, ValueError):
                pass
        while pos < end:
            try:
                payload, nxt = self.read_at(pos, f"#{ordinal} of scan from byte {start}")
            except RecordIOError as exc:
                key = self.index.key_at(pos) if self.index else None
                if key is None:
                    raise
                raise RecordIOError(
                    str(exc).replace(f"record #{ordinal} of scan from byte {start}", f"record {key}")
                ) from None
            yield pos, payload
            pos, ordinal = nxt, ordinal + 1

    def __iter__(self) -> Iterator[bytes]:
        for _, payload in self.scan():
            yield payload
