"""Speed of MUSIQ (paper-size model, untrained weights: speed does not depend on them); JSON on stdout.

    python bench/bench_musiq.py                                   # 224x224 face crops, batch 8, + one 1024x768 photo
    python bench/bench_musiq.py --threads 2 --max-full-side 512
    python bench/bench_musiq.py --device cuda --dtype bfloat16

Two workloads, each after one warm-up run:
- ``faces``: ``batch_size`` aligned 224x224 crops (scales 224, 384 + full = 49 + 144 + 49 = 242 patches each);
- ``photo``: one KonIQ-sized 1024x768 image (42 + 108 + 768 = 918 patches; ``--max-full-side`` caps the last).
Reported: image-processor time (numpy, CPU) and model forward time, median over ``--runs``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch

from hf_fiqa.models.musiq import MUSIQConfig, MUSIQForImageQualityAssessment, MUSIQImageProcessor


def _median_seconds(fn, runs: int, device: str) -> float:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32")
    ap.add_argument("--max-full-side", type=int, default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    model = MUSIQForImageQualityAssessment(MUSIQConfig()).to(args.device, dtype).eval()
    processor = MUSIQImageProcessor(max_full_side=args.max_full_side)
    rng = np.random.default_rng(0)
    workloads = {
        "faces": [rng.integers(0, 256, (224, 224, 3), dtype=np.uint8) for _ in range(args.batch_size)],
        "photo": [rng.integers(0, 256, (768, 1024, 3), dtype=np.uint8)],
    }
    results = []
    for name, images in workloads.items():
        batch = processor(images)
        inputs = {k: (v.to(args.device, dtype) if v.is_floating_point() else v.to(args.device))
                  for k, v in batch.items() if k != "crop_to_image"}

        def forward() -> None:
            with torch.inference_mode():
                model(**inputs)

        process_s = _median_seconds(lambda: processor(images), args.runs, "cpu")
        forward_s = _median_seconds(forward, args.runs, args.device)
        results.append({
            "workload": name, "images": len(images), "sequence_length": int(batch["pixel_values"].shape[1]),
            "processor_s": round(process_s, 4), "forward_s": round(forward_s, 4),
            "images_per_s": round(len(images) / (process_s + forward_s), 2),
        })
    print(json.dumps({
        "benchmark": "musiq", "device": args.device, "dtype": args.dtype, "threads": torch.get_num_threads(),
        "parameters_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        "cpu": platform.processor() or platform.machine(), "results": results,
    }, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
