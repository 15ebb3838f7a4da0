"""MANIQA on CPU: onnxruntime (``hf-fiqa export onnx``) vs torch, same random weights, same batch.

Prints one JSON document: export time, file size, seconds per batch (median of ``--repeats`` after a warm-up)
and images/s for both runtimes, and the largest score difference. Example:

    python bench/bench_onnx.py --size full --batch 8 --threads 2

``--size full`` is MANIQA-B/8 at 224 (the paper's model), ``tiny`` the test model. Weights are random (no
checkpoint is downloaded); speed does not depend on their values.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("tiny", "full"), default="full")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for both runtimes (default: torch's)")
    args = parser.parse_args()

    import numpy as np
    import onnxruntime as ort
    import torch

    from hf_fiqa.export.onnx import export_onnx
    from hf_fiqa.models.maniqa import MANIQAConfig, MANIQAForImageQualityAssessment, MANIQAImageProcessor

    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    torch.manual_seed(0)
    config = MANIQAConfig() if args.size == "full" else MANIQAConfig.tiny()
    model = MANIQAForImageQualityAssessment(config).eval()
    processor = MANIQAImageProcessor(crop_size=config.image_size, policy="resize")
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (config.image_size, config.image_size, 3), dtype=np.uint8) for _ in range(args.batch)]
    pixels = processor(images, return_tensors="np")["pixel_values"].astype(np.float32)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "maniqa.onnx"
        start = time.perf_counter()
        with contextlib.redirect_stdout(sys.stderr):
            export_onnx(model, path, processor=processor, check=False)
        export_s = time.perf_counter() - start
        size_mb = path.stat().st_size / 2**20
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

        def run_ort():
            return session.run(["score"], {"pixel_values": pixels})[0]

        tensor = torch.from_numpy(pixels)

        def run_torch():
            with torch.inference_mode():
                return model(pixel_values=tensor).score.numpy()

        def timed(fn):
            out = fn()  # warm-up
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                fn()
                times.append(time.perf_counter() - start)
            return out, statistics.median(times)

        ort_scores, ort_s = timed(run_ort)
        torch_scores, torch_s = timed(run_torch)

    print(json.dumps({
        "model": f"MANIQA {'B/8 224' if args.size == 'full' else 'tiny'}", "batch": args.batch, "threads": threads,
        "dtype": "float32", "export_s": round(export_s, 1), "onnx_mb": round(size_mb, 1),
        "torch": {"s_per_batch": round(torch_s, 3), "images_per_s": round(args.batch / torch_s, 3)},
        "onnxruntime": {"s_per_batch": round(ort_s, 3), "images_per_s": round(args.batch / ort_s, 3)},
        "speedup_ort_vs_torch": round(torch_s / ort_s, 3),
        "max_abs_score_diff": float(np.abs(ort_scores.astype(np.float64) - torch_scores).max()),
        "versions": {"torch": torch.__version__, "onnxruntime": ort.__version__, "python": platform.python_version()},
        "cpu": platform.processor() or platform.machine(),
    }, indent=1))


if __name__ == "__main__":
    main()
