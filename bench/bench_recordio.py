"""RecordIO reading and RecordIO -> Parquet conversion speed on a synthetic MS1M-style file.

Writes a few hundred MB of ``train.rec``/``train.idx`` (112x112 JPEGs of face-crop size, a
handful of encoded images reused), then measures with ``hf_fiqa.data``:

* sequential reads (``MS1MRecords.iter_images`` and the raw ``RecordIOReader.scan``),
* random reads through the index (``MS1MRecords.image`` on shuffled keys),
* streaming iteration of ``load_ms1m(streaming=True)`` (undecoded images),
* conversion to sharded Parquet with both writers (``method="arrow"``, ``"datasets"``).

The file was just written, so reads hit the page cache (warm); cold-disk figures depend on
the storage and are not measured here. Prints one JSON object; removes its files unless
``--keep``.

    python bench/bench_recordio.py [--size-mb 300] [--workdir /tmp] [--keep]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import struct
import tempfile
import time
from pathlib import Path

import numpy as np

MAGIC = 0xCED7230A


def face_like_jpegs(count: int, seed: int = 0) -> list[bytes]:
    """Smooth random 112x112 images: JPEG sizes like real aligned face crops (a few KB)."""
    import cv2
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        noise = rng.normal(128, 60, (112, 112, 3)).astype(np.float32)
        img = np.clip(cv2.GaussianBlur(noise, (0, 0), 2.5) * 1.8 - 100, 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=95)
        out.append(buf.getvalue())
    return out


def write_synthetic_rec(folder: Path, size_bytes: int, num_classes: int = 1000) -> dict:
    """MS1MV2-shaped file: header record 0, image records 1..n, one record per identity."""
    jpegs = face_like_jpegs(16)
    magic = struct.pack("<I", MAGIC)

    def record(rec, idx, key, payload):
        idx.write(f"{key}\t{rec.tell()}\n")
        n, start = len(payload), 0
        for i in range(0, n - n % 4, 4):  # dmlc-core splits at aligned magic words
            if payload[i:i + 4] == magic:
                rec.write(magic + struct.pack("<I", ((1 if start == 0 else 2) << 29) | (i - start)) + payload[start:i])
                start = i + 4
        rec.write(magic + struct.pack("<I", ((3 if start else 0) << 29) | (n - start)) + payload[start:])
        rec.write(b"\x00" * ((-n) % 4))

    avg = sum(len(j) for j in jpegs) / len(jpegs) + 32
    n_images = max(num_classes, int(size_bytes / avg))
    per_class = n_images // num_classes
    n_images = per_class * num_classes
    folder.mkdir(parents=True, exist_ok=True)
    first_identity = n_images + 1
    with open(folder / "train.rec", "wb") as rec, open(folder / "train.idx", "w") as idx:
        head = struct.pack("<IfQQ", 2, 0.0, 0, 0) + struct.pack("<2f", first_identity, first_identity + num_classes)
        record(rec, idx, 0, head)
        for k in range(1, n_images + 1):
            identity = (k - 1) // per_class
            record(rec, idx, k, struct.pack("<IfQQ", 0, float(identity), k, 0) + jpegs[k % len(jpegs)])
        for c in range(num_classes):
            a = 1 + c * per_class
            labels = struct.pack("<IfQQ", 2, 0.0, 0, 0) + struct.pack("<2f", a, a + per_class)
            record(rec, idx, first_identity + c, labels)
    (folder / "property").write_text(f"{num_classes},112,112")
    return {"images": n_images, "identities": num_classes, "rec_bytes": (folder / "train.rec").stat().st_size,
            "mean_jpeg_bytes": round(sum(len(j) for j in jpegs) / len(jpegs))}


def timed(fn):
    t0 = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=300.0)
    parser.add_argument("--random-reads", type=int, default=20000)
    parser.add_argument("--workdir", default=None, help="where to write the temporary files")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--num-proc", type=int, default=2, help="processes for the parallel arrow conversion")
    args = parser.parse_args()

    import datasets

    from hf_fiqa.data.ms1m import MS1MRecords, load_ms1m
    from hf_fiqa.data.rec2parquet import rec_to_parquet
    from hf_fiqa.data.recordio import RecordIOReader

    datasets.disable_progress_bars()
    work = Path(tempfile.mkdtemp(prefix="bench_recordio_", dir=args.workdir))
    results: dict = {"python": platform.python_version(), "cpus": os.cpu_count(), "datasets": datasets.__version__}
    try:
        folder = work / "faces_emore"
        info, t = timed(lambda: write_synthetic_rec(folder, int(args.size_mb * 1e6)))
        results["file"] = dict(info, write_s=round(t, 2))
        mb = info["rec_bytes"] / 1e6
        n = info["images"]

        recs = MS1MRecords(folder)
        count, t = timed(lambda: sum(1 for _ in recs.iter_images()))
        assert count == n
        results["sequential_iter_images"] = {
            "records_per_s": round(n / t), "MB_per_s": round(mb / t, 1), "s": round(t, 2)}

        with RecordIOReader(folder / "train.rec") as reader:
            total, t = timed(lambda: sum(1 for _ in reader.scan()))
        results["sequential_raw_scan"] = {"records_per_s": round(total / t), "MB_per_s": round(mb / t, 1)}

        rng = np.random.default_rng(0)
        keys = rng.choice(np.asarray(recs.image_keys), size=min(args.random_reads, n), replace=False)
        _, t = timed(lambda: [recs.image(int(k)) for k in keys])
        results["random_read"] = {"records_per_s": round(len(keys) / t), "reads": len(keys)}
        recs.reader.close()

        stream = load_ms1m(folder, streaming=True, num_shards=8).cast_column("image", datasets.Image(decode=False))
        count, t = timed(lambda: sum(1 for _ in stream))
        results["streaming_iterable_dataset"] = {"records_per_s": round(count / t), "MB_per_s": round(mb / t, 1)}

        conversions = {}
        for method, nproc in (("arrow", 1), ("datasets", 1), ("arrow", args.num_proc)):
            out = work / f"parquet_{method}_{nproc}"
            res, t = timed(lambda: rec_to_parquet(folder, out, method=method, num_proc=nproc, max_shard_size="100MB"))
            assert res.rows == n
            conversions[f"{method}_num_proc{nproc}"] = {
                "records_per_s": round(n / t), "MB_per_s": round(mb / t, 1), "s": round(t, 2),
                "shards": len(res.files), "parquet_MB": round(res.bytes_written / 1e6, 1),
            }
            shutil.rmtree(out)
        results["rec_to_parquet"] = conversions
        results["note"] = "page cache warm (file just written); single-run wall-clock figures"
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            results["kept"] = str(work)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
