"""Verification sets (lfw.bin & co.): read through the restricted unpickler only."""

from __future__ import annotations

import io
import pickle
import struct

import numpy as np
import pytest
from PIL import Image

from hf_fiqa.data.errors import DatasetFormatError
from hf_fiqa.data.verification import (
    UnsafePickleError,
    load_verification_pairs,
    load_verification_sets,
    read_verification_bin,
)


def jpeg(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (112, 112, 3), dtype=np.uint8)).save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def py2_pickle(bins: list[bytes], issame: list[bool]) -> bytes:
    """What insightface's Python 2 packer wrote: protocol 2, ``str`` as (SHORT_)BINSTRING, no globals."""
    out = bytearray(b"\x80\x02")
    out += b"]q\x00("  # EMPTY_LIST, BINPUT 0, MARK
    for b in bins:
        out += (b"U" + bytes([len(b)]) if len(b) < 256 else b"T" + struct.pack("<I", len(b))) + b
    out += b"e]q\x01("  # APPENDS, EMPTY_LIST, BINPUT 1, MARK
    for flag in issame:
        out += b"\x88" if flag else b"\x89"
    out += b"e\x86q\x02."  # APPENDS, TUPLE2, BINPUT 2, STOP
    return bytes(out)


PAIRS = [True, False, True]


@pytest.fixture()
def bins():
    return [jpeg(i) for i in range(2 * len(PAIRS))]


def test_python2_lfw_bin_needs_no_globals(tmp_path, bins):
    path = tmp_path / "lfw.bin"
    path.write_bytes(py2_pickle(bins, PAIRS))
    # Sanity: this really is a py2-style stream that plain pickle cannot read as bytes without encoding=.
    with pytest.raises(UnicodeDecodeError):
        pickle.loads(path.read_bytes())
    images, flags = read_verification_bin(path)
    assert images == bins and flags == PAIRS


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_python3_pickles_of_bytes(tmp_path, bins, protocol):
    path = tmp_path / "cfp_fp.bin"
    path.write_bytes(pickle.dumps((bins, PAIRS), protocol=protocol))
    assert read_verification_bin(path) == (bins, PAIRS)


@pytest.mark.parametrize("protocol", [2, 5])
def test_cv2_imencode_style_numpy_arrays(tmp_path, bins, protocol):
    arrays = [np.frombuffer(b, dtype=np.uint8).reshape(-1, 1) for b in bins]  # cv2.imencode returns (N, 1)
    flags = [np.bool_(f) for f in PAIRS]
    path = tmp_path / "agedb_30.bin"
    path.write_bytes(pickle.dumps((arrays, flags), protocol=protocol))
    assert read_verification_bin(path) == (bins, PAIRS)


def test_pairs_dataset(tmp_path, bins):
    path = tmp_path / "lfw.bin"
    path.write_bytes(py2_pickle(bins, PAIRS))
    ds = load_verification_pairs(path)
    assert len(ds) == 3 and ds["issame"] == PAIRS and ds["pair_index"] == [0, 1, 2]
    assert ds[1]["image1"].size == (112, 112)
    raw = ds.cast_column("image2", __import__("datasets").Image(decode=False))
    assert raw[2]["image2"]["bytes"] == bins[5]
    dd = load_verification_sets(tmp_path)
    assert list(dd) == ["lfw"]


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


class _Evals:
    def __reduce__(self):
        return (eval, ("1 + 1",))


def test_malicious_pickles_are_refused_before_anything_runs(tmp_path, bins):
    marker = tmp_path / "pwned"
    cases = {
        "open.bin": ([_RunsCode(marker)] + bins[1:], PAIRS),
        "eval.bin": (bins, [_Evals()] + PAIRS[1:]),
    }
    for name, obj in cases.items():
        path = tmp_path / name
        path.write_bytes(pickle.dumps(obj, protocol=2))
        refused = rf"{name}: refusing to load global (io|__builtin__|builtins)\.(open|eval)"
        with pytest.raises(UnsafePickleError, match=refused):
            read_verification_bin(path)
    assert not marker.exists()
    # Object arrays would let nested pickles in: refused through the dtype guard.
    path = tmp_path / "objects.bin"
    path.write_bytes(pickle.dumps(([np.array([b"x"], dtype=object)] * 2, [True]), protocol=2))
    with pytest.raises(DatasetFormatError, match="objects.bin.*dtype"):
        read_verification_bin(path)


def test_malformed_verification_files(tmp_path, bins):
    path = tmp_path / "lfw.bin"
    path.write_bytes(pickle.dumps((bins[:-1], PAIRS), protocol=4))
    with pytest.raises(DatasetFormatError, match="5 images for 3 pairs"):
        read_verification_bin(path)
    path.write_bytes(b"\x80\x02garbage")
    with pytest.raises(DatasetFormatError, match="lfw.bin"):
        read_verification_bin(path)
    path.write_bytes(pickle.dumps((bins[:2], [True]), protocol=4)[:-30])  # truncated
    with pytest.raises(DatasetFormatError, match="lfw.bin"):
        read_verification_bin(path)
    corrupt = [bins[0], bins[1][:200]]
    path.write_bytes(pickle.dumps((corrupt, [False]), protocol=4))
    with pytest.raises(DatasetFormatError, match=r"image 1 \(pair 0\)"):
        load_verification_pairs(path)
