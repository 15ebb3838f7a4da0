"""Face-quality pipeline on a folder of real photos: per-stage latency (decode, detect, align, score) and photos/s.

    python bench/bench_pipeline.py --sizes tiny full --limit 40

Models are randomly initialised (speed does not depend on the weights). Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def _stats(values: list[float]) -> dict[str, float]:
    ms = np.asarray(values) * 1000
    return {"mean_ms": round(float(ms.mean()), 2), "p50_ms": round(float(np.median(ms)), 2),
            "p95_ms": round(float(np.percentile(ms, 95)), 2)}


def run(size: str, photos: list[Path], weights: str, batch_size: int) -> dict:
    from hf_fiqa.faces import FaceCropper, YuNetDetector
    from hf_fiqa.io import load_image
    from hf_fiqa.models.maniqa import MANIQAConfig, MANIQAForImageQualityAssessment, MANIQAImageProcessor
    from hf_fiqa.scorers import ModelQualityScorer, crop_spec

    config = MANIQAConfig() if size == "full" else MANIQAConfig.tiny()
    model = MANIQAForImageQualityAssessment(config).eval()
    scorer = ModelQualityScorer(model, MANIQAImageProcessor(crop_size=config.image_size), batch_size=batch_size)
    detector = YuNetDetector(weights)
    cropper, spec = FaceCropper(detector), crop_spec(scorer)
    decode, detect, align, crops = [], [], [], []
    start = time.perf_counter()
    for path in photos:
        t0 = time.perf_counter()
        rgb = np.asarray(load_image(path))
        t1 = time.perf_counter()
        faces = detector.detect(rgb)
        t2 = time.perf_counter()
        crops += cropper.align(rgb, faces, [spec])[spec]
        t3 = time.perf_counter()
        decode.append(t1 - t0), detect.append(t2 - t1), align.append(t3 - t2)
    t0 = time.perf_counter()
    scorer.score(crops)
    score_total = time.perf_counter() - t0
    total = time.perf_counter() - start
    return {"model": size, "photos": len(photos), "faces": len(crops), "batch_size": batch_size,
            "decode": _stats(decode), "detect": _stats(detect), "align": _stats(align),
            "score_ms_per_face": round(score_total / max(1, len(crops)) * 1000, 2),
            "photos_per_s": round(len(photos) / total, 3), "seconds": round(total, 2)}


def main() -> None:
    from hf_fiqa.paths import shared_dir

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=shared_dir() / "data" / "celeba-wild-ids" / "images")
    parser.add_argument("--weights", default=str(shared_dir() / "weights" / "yunet" / "face_detection_yunet.onnx"))
    parser.add_argument("--sizes", nargs="+", default=["tiny", "full"], choices=["tiny", "full"])
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    photos = sorted(p for p in args.folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[: args.limit]
    results = [run(size, photos, args.weights, args.batch_size) for size in args.sizes]
    print(json.dumps({"folder": str(args.folder), "threads": args.threads, "torch": torch.__version__,
                      "results": results}, indent=1))


if __name__ == "__main__":
    main()
