"""MANIQA training throughput (forward + backward + Adam step) on this machine, with model FLOPs utilisation.

    python bench/bench_training.py --sizes tiny full --batch 8 --dtypes float32 bfloat16

FLOPs per sample are counted with torch.utils.flop_counter on one forward + backward; MFU divides achieved
FLOP/s by ``--peak-tflops`` (defaults: 0.184 fp32 / 0.384 bf16, the measured matmul peaks of the 2-core
project machines; pass your accelerator's peak on a GPU). Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch.utils.flop_counter import FlopCounterMode


def measure(size: str, batch: int, dtype_name: str, steps: int, device: str, peak_tflops: float) -> dict:
    from hf_fiqa.models.maniqa import MANIQAConfig, MANIQAForImageQualityAssessment

    config = MANIQAConfig() if size == "full" else MANIQAConfig.tiny()
    model = MANIQAForImageQualityAssessment(config).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-5)
    x = torch.randn(batch, 3, config.image_size, config.image_size, device=device)
    y = torch.rand(batch, device=device)
    autocast = torch.autocast(device_type=device.split(":")[0], dtype=getattr(torch, dtype_name),
                              enabled=dtype_name != "float32")

    def step() -> None:
        with autocast:
            loss = model(pixel_values=x, labels=y).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    with FlopCounterMode(display=False) as counter:
        step()
    flops = counter.get_total_flops()
    times = []
    for _ in range(steps):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    best = min(times)
    return {"size": size, "dtype": dtype_name, "batch": batch, "device": device,
            "seconds_per_step": round(best, 3), "samples_per_s": round(batch / best, 3),
            "gflop_per_sample": round(flops / batch / 1e9, 3),
            "mfu": round(flops / best / (peak_tflops * 1e12), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["tiny", "full"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--peak-tflops", type=float, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    peaks = {"float32": 0.184, "bfloat16": 0.384}
    rows = [measure(s, args.batch, d, args.steps, args.device, args.peak_tflops or peaks.get(d, 0.184))
            for s in args.sizes for d in args.dtypes]
    print(json.dumps({"torch": torch.__version__, "threads": args.threads, "results": rows}, indent=1))


if __name__ == "__main__":
    main()
