"""MXNet RecordIO reading and MS1M datasets, checked against an independent writer.

The writer below follows dmlc-core's ``RecordIOWriter::WriteRecord`` and MXNet's
``recordio.pack`` from their specification; it shares no code with ``hf_fiqa.data.recordio``.
"""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image

from hf_fiqa.data.errors import DatasetFormatError, SkipLog
from hf_fiqa.data.ms1m import MS1MRecords, load_ms1m
from hf_fiqa.data.rec2parquet import rec_to_parquet
from hf_fiqa.data.recordio import RecordIOError, RecordIOReader, read_index, unpack_record

MAGIC = 0xCED7230A


def write_recordio(rec_path, idx_path, payloads):
    """Write ``{key: payload}`` like dmlc-core: split at 4-byte-aligned magic words (dropping them),
    cflag 1/2/3 for multi-part records, zero padding to 4 bytes at the record end."""
    magic = struct.pack("<I", MAGIC)
    with open(rec_path, "wb") as rec, open(idx_path, "w") as idx:
        for key, data in payloads.items():
            idx.write(f"{key}\t{rec.tell()}\n")
            n = len(data)
            start = 0
            for i in range(0, n - n % 4, 4):
                if data[i:i + 4] == magic:
                    rec.write(magic + struct.pack("<I", ((1 if start == 0 else 2) << 29) | (i - start)))
                    rec.write(data[start:i])
                    start = i + 4
            rec.write(magic + struct.pack("<I", ((3 if start else 0) << 29) | (n - start)))
            rec.write(data[start:])
            rec.write(b"\x00" * ((-n) % 4))


def pack(label, image: bytes, id_=0, flag_labels=None) -> bytes:
    """MXNet IRHeader (flag uint32, label float32, id uint64, id2 uint64) + optional labels + image."""
    if flag_labels is not None:
        head = struct.pack("<IfQQ", len(flag_labels), 0.0, id_, 0) + struct.pack(f"<{len(flag_labels)}f", *flag_labels)
    else:
        head = struct.pack("<IfQQ", 0, float(label), id_, 0)
    return head + image


def jpeg(seed: int, size=(16, 16)) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def make_ms1m(root, identities=(3, 2, 4), with_magic_inside=True):
    """An MS1MV2-shaped folder: header record 0, image records, identity records, property."""
    root.mkdir(parents=True, exist_ok=True)
    payloads, expected = {}, {}
    key = 1
    ranges = []
    for ident, count in enumerate(identities):
        first = key
        for _ in range(count):
            img = jpeg(key)
            if with_magic_inside and key == 2:
                # After the JPEG's end (decoders ignore trailing bytes) put the magic word twice at
                # 4-byte-aligned payload offsets (the IRHeader is 24 bytes), the second one last:
                # the writer must split this into 3 parts, the last one empty.
                img += b"\x00" * ((-len(img) - 24) % 4)
                img += struct.pack("<I", MAGIC) + b"tail" + struct.pack("<I", MAGIC)
            payloads[key] = pack(ident, img, id_=key)
            expected[key] = (img, ident)
            key += 1
        ranges.append((first, key))
    first_identity = key
    for ident, (a, b) in enumerate(ranges):
        payloads[key] = pack(0, b"", flag_labels=[float(a), float(b)])
        key += 1
    payloads = {0: pack(0, b"", flag_labels=[float(first_identity), float(key)]), **payloads}
    write_recordio(root / "train.rec", root / "train.idx", payloads)
    (root / "property").write_text(f"{len(identities)},16,16")
    return expected


@pytest.fixture()
def ms1m(tmp_path):
    root = tmp_path / "faces_emore"
    return root, make_ms1m(root)


def test_independent_writer_really_produced_multipart_records(ms1m):
    root, expected = ms1m
    raw = (root / "train.rec").read_bytes()
    offsets = read_index(root / "train.idx")
    off = offsets[2]
    flags = []
    pos = off
    while True:
        magic, lrec = struct.unpack_from("<II", raw, pos)
        assert magic == MAGIC
        flags.append(lrec >> 29)
        pos += 8 + (((lrec & ((1 << 29) - 1)) + 3) & ~3)
        if flags[-1] in (0, 3):
            break
    assert flags[0] == 1 and flags[-1] == 3 and len(flags) >= 3


def test_random_access_reassembles_multipart_and_reads_labels(ms1m):
    root, expected = ms1m
    recs = MS1MRecords(root)
    assert len(recs) == len(expected) == 9 and recs.num_classes == 3
    for key in (5, 2, 9, 1):
        image, identity = recs.image(key)
        assert (image, identity) == expected[key]
    assert list(recs.identity_images(recs.identity_range[1])) == [4, 5]
    header, rest = unpack_record(recs.reader.read(0))
    assert header.flag == 2 and header.label == (10.0, 13.0) and rest == b""


def test_sequential_iteration_matches_random_access(ms1m):
    root, expected = ms1m
    recs = MS1MRecords(root)
    rows = list(recs.iter_images())
    assert [r["key"] for r in rows] == sorted(expected)
    for r in rows:
        assert (r["image"]["bytes"], r["identity"]) == expected[r["key"]]
    # The raw scan sees every record including header and identity records.
    with RecordIOReader(root / "train.rec") as reader:
        assert sum(1 for _ in reader) == 1 + 9 + 3


def test_load_ms1m_dataset_and_streaming(ms1m, tmp_path):
    root, expected = ms1m
    ds = load_ms1m(root, num_shards=2, cache_dir=str(tmp_path / "cache"))
    assert len(ds) == 9
    assert ds.features["identity"].num_classes == 3
    row = ds[1]
    assert row["key"] == 2 and row["identity"] == expected[2][1]
    assert row["image"].size == (16, 16)
    stream = load_ms1m(root, streaming=True, num_shards=3)
    assert stream.num_shards == 3
    keys = [r["key"] for r in stream]
    assert keys == sorted(expected)


def _corrupt_magic(path, key_offset):
    data = bytearray(path.read_bytes())
    data[key_offset:key_offset + 4] = b"\xde\xad\xbe\xef"
    path.write_bytes(bytes(data))


def test_bad_magic_names_file_record_and_offset(ms1m):
    root, expected = ms1m
    offset = read_index(root / "train.idx")[4]
    _corrupt_magic(root / "train.rec", offset)
    recs = MS1MRecords(root)
    with pytest.raises(RecordIOError, match=rf"train\.rec: record 4 at byte offset {offset}: bad magic"):
        recs.image(4)
    with pytest.raises(RecordIOError, match="record 4"):
        list(recs.iter_images())
    skipped = SkipLog()
    rows = list(recs.iter_images(skip_errors=True, skipped=skipped))
    assert len(rows) == 8 and skipped.count == 1 and "record 4" in skipped.skipped[0][0]


def test_truncated_file_is_reported(ms1m):
    root, expected = ms1m
    rec = root / "train.rec"
    offsets = read_index(root / "train.idx")
    cut = offsets[7] + 20  # inside record 7's payload
    rec.write_bytes(rec.read_bytes()[:cut])
    recs = MS1MRecords(root)
    assert recs.image(6) == expected[6]
    with pytest.raises(RecordIOError, match=rf"record 7 at byte offset {offsets[7]}: truncated"):
        recs.image(7)
    with RecordIOReader(rec) as reader:
        with pytest.raises(RecordIOError, match="truncated"):
            list(reader.scan())


def test_bad_index_line_and_property(tmp_path, ms1m):
    root, _ = ms1m
    idx = root / "train.idx"
    good = idx.read_text()
    lines = good.splitlines()
    lines[3] = "3\tnot-an-offset"
    idx.write_text("\n".join(lines) + "\n")
    with pytest.raises(RecordIOError, match=r"train\.idx line 4"):
        read_index(idx)
    idx.write_text(good)
    (root / "property").write_text("85742;112;112")
    with pytest.raises(DatasetFormatError, match=r"property: expected 'num_classes,height,width'"):
        MS1MRecords(root)


def test_label_outside_num_classes_is_an_error(tmp_path):
    root = tmp_path / "bad"
    root.mkdir()
    write_recordio(root / "train.rec", root / "train.idx", {0: pack(7, jpeg(0)), 1: pack(1, jpeg(1))})
    (root / "property").write_text("2,16,16")
    recs = MS1MRecords(root)  # no header record: every record is an image
    assert len(recs) == 2
    with pytest.raises(RecordIOError, match=r"record 0: identity label 7\.0"):
        recs.image(0)


@pytest.mark.parametrize("method", ["arrow", "datasets"])
def test_rec_to_parquet_round_trip(ms1m, tmp_path, method):
    import datasets

    root, expected = ms1m
    out = tmp_path / f"out_{method}"
    result = rec_to_parquet(root, out, max_shard_size=300, method=method)  # tiny shards: several files
    assert result.rows == 9 and len(result.files) > 1
    assert all(f.name.startswith("train-") and f.name.endswith(f"-of-{len(result.files):05d}.parquet")
               for f in result.files)
    ds = datasets.load_dataset("parquet", data_dir=str(out / "data"), split="train",
                              cache_dir=str(tmp_path / "hf_cache"))
    assert ds.features["identity"].num_classes == 3
    assert sorted(ds["key"]) == sorted(expected)
    row = ds.cast_column("image", datasets.Image(decode=False))[0]
    assert (row["image"]["bytes"], row["identity"]) == expected[row["key"]]


def test_rec_to_parquet_skips_and_counts(ms1m, tmp_path):
    root, expected = ms1m
    _corrupt_magic(root / "train.rec", read_index(root / "train.idx")[3])
    with pytest.raises(RecordIOError, match="record 3"):
        rec_to_parquet(root, tmp_path / "o1")
    result = rec_to_parquet(root, tmp_path / "o2", skip_errors=True)
    assert result.rows == 8 and result.skipped.count == 1


def test_cli_rec2parquet(ms1m, tmp_path, capsys):
    import argparse

    import datasets

    from hf_fiqa.commands import dataset as commands

    root, expected = ms1m
    parser = argparse.ArgumentParser(prog="hf-fiqa")
    commands.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["dataset", "rec2parquet", str(root), "--output", str(tmp_path / "pq"), "--overwrite"])
    assert args.func(args) == 0
    assert "rows: train=9" in capsys.readouterr().out
    ds = datasets.load_dataset(str(tmp_path / "pq"), split="train", cache_dir=str(tmp_path / "hf_cache"))
    assert len(ds) == 9 and ds.features["identity"].num_classes == 3
    _corrupt_magic(root / "train.rec", read_index(root / "train.idx")[5])
    assert args.func(args) == 1
    assert "record 5" in capsys.readouterr().err


def test_failed_conversion_keeps_previous_output(ms1m, tmp_path):
    root, _ = ms1m
    out = tmp_path / "pq"
    first = rec_to_parquet(root, out)
    before = {f.name: f.read_bytes() for f in first.files}
    _corrupt_magic(root / "train.rec", read_index(root / "train.idx")[8])
    with pytest.raises(RecordIOError):
        rec_to_parquet(root, out, max_shard_size=300)
    after = {f.name: f.read_bytes() for f in (out / "data").iterdir()}
    assert after == before
