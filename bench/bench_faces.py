"""Per-photo latency of decode -> detect -> align on a folder of real photos; JSON on stdout.

    python bench/bench_faces.py                      # celeba-wild-ids from the shared folder
    python bench/bench_faces.py --limit 300 --sizes 112 224 --threads 1
    python bench/bench_faces.py --folder /some/photos --weights yunet.onnx

Stages are timed separately per photo: ``decode`` (hf_fiqa.io.load_image + array view),
``detect`` (YuNetDetector.detect, fallback included) and ``align`` (align_faces for every
detected face at every requested size). ``--limit`` picks N photos spread evenly over the
sorted file list, so a short run still covers all identities of a folder-per-identity set.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from hf_fiqa.faces import YuNetDetector, align_faces
from hf_fiqa.io import ImageReadError, load_image
from hf_fiqa.paths import shared_dir

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def _stats(ms: list[float]) -> dict[str, float]:
    if not ms:
        return {"n": 0}
    a = np.asarray(ms)
    return {
        "n": int(a.size),
        "mean_ms": round(float(a.mean()), 2),
        "p50_ms": round(float(np.percentile(a, 50)), 2),
        "p95_ms": round(float(np.percentile(a, 95)), 2),
        "max_ms": round(float(a.max()), 2),
    }


def _pick(files: list[Path], limit: int | None) -> list[Path]:
    if not limit or limit >= len(files):
        return files
    idx = np.linspace(0, len(files) - 1, limit).round().astype(int)
    return [files[i] for i in dict.fromkeys(idx.tolist())]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folder", type=Path, default=None, help="photos (searched recursively); default celeba-wild-ids")
    ap.add_argument("--limit", type=int, default=None, help="use N photos spread over the folder")
    ap.add_argument("--weights", type=Path, default=None,
                    help="YuNet ONNX (default: the shared weights, else the usual lookup)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[112, 224], help="aligned crop sizes")
    ap.add_argument("--threads", type=int, default=None, help="cv2.setNumThreads (default: OpenCV's choice)")
    ap.add_argument("--max-side", type=int, default=1280)
    ap.add_argument("--warmup", type=int, default=3, help="untimed photos first (model init, caches)")
    args = ap.parse_args(argv)

    folder = args.folder or shared_dir() / "data" / "celeba-wild-ids"
    if not folder.is_dir():
        print(f"no such folder: {folder} (set HF_FIQA_SHARED or pass --folder)", file=sys.stderr)
        return 2
    weights = args.weights
    if weights is None and (shared_dir() / "weights" / "yunet" / "face_detection_yunet.onnx").is_file():
        weights = shared_dir() / "weights" / "yunet" / "face_detection_yunet.onnx"
    if args.threads is not None:
        cv2.setNumThreads(args.threads)

    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    files = _pick(files, args.limit)
    if not files:
        print(f"no images under {folder}", file=sys.stderr)
        return 2
    detector = YuNetDetector(weights, max_side=args.max_side)

    for p in files[: args.warmup]:
        try:
            img = np.asarray(load_image(p))
            align_faces(img, detector.detect(img), sizes=args.sizes)
        except ImageReadError:
            pass

    decode, detect, align, total, megapixels = [], [], [], [], []
    n_faces, no_face, fallback, failures = 0, [], 0, []
    for p in tqdm(files, desc="photos", unit="photo", file=sys.stderr):
        t0 = time.perf_counter()
        try:
            img = np.asarray(load_image(p))
        except ImageReadError as exc:
            failures.append(str(exc))
            continue
        t1 = time.perf_counter()
        faces = detector.detect(img)
        t2 = time.perf_counter()
        align_faces(img, faces, sizes=args.sizes)
        t3 = time.perf_counter()
        decode.append((t1 - t0) * 1e3)
        detect.append((t2 - t1) * 1e3)
        align.append((t3 - t2) * 1e3)
        total.append((t3 - t0) * 1e3)
        megapixels.append(img.shape[0] * img.shape[1] / 1e6)
        n_faces += len(faces)
        if not faces:
            no_face.append(str(p.relative_to(folder)))
        elif faces[0].score < detector.score_threshold:
            fallback += 1

    n = len(decode)
    report = {
        "folder": str(folder),
        "photos": n,
        "read_failures": failures,
        "photos_with_face": n - len(no_face),
        "face_rate": round((n - len(no_face)) / n, 4) if n else None,
        "photos_needing_fallback": fallback,
        "photos_without_face": no_face[:20],
        "faces": n_faces,
        "align_sizes": args.sizes,
        "megapixels_p50": round(float(np.median(megapixels)), 3) if megapixels else None,
        "megapixels_max": round(float(np.max(megapixels)), 3) if megapixels else None,
        "decode": _stats(decode),
        "detect": _stats(detect),
        "align": _stats(align),
        "align_per_face_ms": round(sum(align) / n_faces, 3) if n_faces else None,
        "total": _stats(total),
        "detector": repr(detector),
        "opencv": cv2.__version__,
        "cv2_threads": cv2.getNumThreads(),
        "cpu": platform.processor() or platform.machine(),
    }
    json.dump(report, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
