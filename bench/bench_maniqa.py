"""MANIQA inference speed and peak memory: hf-fiqa's model vs the official structure, same weights.

Each (implementation, size, dtype, batch) runs in its own subprocess so that peak RSS belongs to that case
alone. Prints one JSON document. Example:

    python bench/bench_maniqa.py --sizes tiny full --batches 1 8 32 --dtypes float32 bfloat16

The official structure is ``ReferenceMANIQA`` (``tests/reference_maniqa.py``): all ViT blocks,
classifier head, forward hooks, explicit-softmax attention and a per-sample head loop. Scores of both
implementations are compared on the same input.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import resource
import sys
import time
from pathlib import Path

# The official-structure reference model lives with the tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def _config(size: str):
    from hf_fiqa.models.maniqa import MANIQAConfig

    return MANIQAConfig() if size == "full" else MANIQAConfig.tiny()


def write_weights(size: str, path: str) -> None:
    """Random official-layout weights, made once so that every case loads the same ones (and only its model)."""
    import torch
    from safetensors.torch import save_file

    from reference_maniqa import ReferenceMANIQA

    torch.manual_seed(0)
    reference = ReferenceMANIQA(_config(size))
    with torch.no_grad():
        reference.fc_score[3].bias.fill_(0.5)
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, path)


def _case(impl: str, size: str, weights: str, dtype_name: str, batch: int, repeats: int, device: str, threads: int,
          queue) -> None:
    import torch
    from safetensors.torch import load_file

    from hf_fiqa.models.maniqa import MANIQAForImageQualityAssessment
    from hf_fiqa.models.maniqa.convert_maniqa import official_to_hf
    from reference_maniqa import ReferenceMANIQA

    torch.set_num_threads(threads)
    dtype = getattr(torch, dtype_name)
    config = _config(size)
    if impl == "hf-fiqa":
        model = MANIQAForImageQualityAssessment(config).eval()
        model.load_state_dict(official_to_hf(load_file(weights), model))
        run = lambda x: model(x).score  # noqa: E731
        module = model
    else:
        reference = ReferenceMANIQA(config).eval()
        reference.load_state_dict(load_file(weights))
        run, module = reference, reference
    module.to(device=device, dtype=dtype)
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(batch, 3, config.image_size, config.image_size, generator=generator).to(device=device, dtype=dtype)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    with torch.inference_mode():
        scores = run(x)  # warm-up
        for _ in range(repeats):
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            scores = run(x)
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
    best = min(times)
    result = {
        "impl": impl, "size": size, "dtype": dtype_name, "batch": batch, "device": device,
        "seconds_per_batch": round(best, 4), "images_per_s": round(batch / best, 3),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "scores": scores.float().cpu().tolist(),
    }
    if device == "cuda":
        result["peak_cuda_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    queue.put(result)


def run_case(*args) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_case, args=(*args, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["tiny", "full"], choices=["tiny", "full"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8, 32])
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    parser.add_argument("--impls", nargs="+", default=["hf-fiqa", "official-structure"])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch

    import tempfile

    results = []
    folder = tempfile.mkdtemp(prefix="bench_maniqa_")
    for size in args.sizes:
        weights = f"{folder}/{size}.safetensors"
        write_weights(size, weights)
        for dtype in args.dtypes:
            for batch in args.batches:
                row = {}
                for impl in args.impls:
                    row[impl] = run_case(impl, size, weights, dtype, batch, args.repeats, args.device, args.threads)
                    results.append(row[impl])
                if len(row) == 2:
                    a, b = row["hf-fiqa"], row["official-structure"]
                    diff = max(abs(p - q) for p, q in zip(a["scores"], b["scores"]))
                    results.append({"compare": f"{size}/{dtype}/b{batch}",
                                    "speedup": round(b["seconds_per_batch"] / a["seconds_per_batch"], 3),
                                    "max_abs_score_diff": diff,
                                    "peak_rss_ratio": round(a["peak_rss_mib"] / b["peak_rss_mib"], 3)})
    for r in results:
        r.pop("scores", None)
    print(json.dumps({"machine": {"cpu": platform.processor() or platform.machine(), "threads": args.threads,
                                  "torch": torch.__version__}, "results": results}, indent=1))


if __name__ == "__main__":
    main()
