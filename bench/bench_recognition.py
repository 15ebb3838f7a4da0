"""Throughput of the face-recognition embedders (untrained weights: speed does not depend on them); JSON on stdout.

    python bench/bench_recognition.py                                  # mobilefacenet + iresnet50, batch 32
    python bench/bench_recognition.py --models iresnet18 iresnet100 --batch-size 64 --threads 2
    python bench/bench_recognition.py --device cuda --dtype bfloat16

For each model: parameters, and the time of ``RecognitionEmbedder.embed_crops`` on random
112x112 crops (normalisation + forward + copy back), after one warm-up batch. SDD-FIQA
labelling and ``hf-fiqa embed`` cost about ``images / images_per_s`` on top of decoding.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch

from hf_fiqa.embedding.embedder import RecognitionEmbedder
from hf_fiqa.models.iresnet import IResNetConfig, IResNetImageProcessor, IResNetModel
from hf_fiqa.models.mobilefacenet import MobileFaceNetConfig, MobileFaceNetModel

MODELS = {
    "mobilefacenet": lambda: MobileFaceNetModel(MobileFaceNetConfig()),
    # the layout of the MS1M-refine release (`hf-fiqa convert mobilefacenet`): ReLU6, separable stem, 128-d
    "mobilefacenet-ms1m": lambda: MobileFaceNetModel(MobileFaceNetConfig(embedding_size=128, activation="relu6",
                                                                         stem_separable=True)),
    "iresnet18": lambda: IResNetModel(IResNetConfig(depth=18)),
    "iresnet50": lambda: IResNetModel(IResNetConfig(depth=50)),
    "iresnet100": lambda: IResNetModel(IResNetConfig(depth=100)),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", choices=sorted(MODELS), default=["mobilefacenet", "iresnet50"])
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--batches", type=int, default=3, help="timed batches per model (after one warm-up)")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    crops = np.random.default_rng(0).integers(0, 256, (args.batch_size, 112, 112, 3), dtype=np.uint8)
    results = []
    for name in args.models:
        model = MODELS[name]().to(dtype=getattr(torch, args.dtype)).eval()
        embedder = RecognitionEmbedder(model, IResNetImageProcessor(), device=args.device, batch_size=args.batch_size)
        embedder.embed_crops(crops)  # warm-up
        times = []
        for _ in range(args.batches):
            start = time.perf_counter()
            embedder.embed_crops(crops)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        per_batch = float(np.median(times))
        results.append(
            {
                "model": name,
                "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 3),
                "batch_size": args.batch_size,
                "median_batch_s": round(per_batch, 4),
                "images_per_s": round(args.batch_size / per_batch, 1),
            }
        )
    print(json.dumps({
        "torch": torch.__version__, "threads": torch.get_num_threads(), "device": args.device, "dtype": args.dtype,
        "cpu": platform.processor() or platform.machine(), "results": results,
    }, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
