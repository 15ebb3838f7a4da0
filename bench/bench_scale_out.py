"""End-to-end photos/s of ``hf-fiqa embed`` and ``hf-fiqa score`` (decode, detect, align, model, write) as a user
runs them: one process or ``accelerate launch --multi_gpu --num_processes N`` (CPU processes over gloo when
there is no GPU), with and without DataLoader workers, per recognizer and per scoring backend.

    python bench/bench_scale_out.py --photos 400 --runs embed-mobilefacenet embed-dlib score-torch

Each command is timed as a whole process (``time.perf_counter`` around ``subprocess.run``). ``photos_per_s`` is
photos / wall time; ``steady_photos_per_s`` leaves out the start-up (imports, model load, process group, worker
spawn), measured by the same command on one photo. Models are randomly initialised at their real sizes (speed
does not depend on the weights). Prints JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS = ("embed-mobilefacenet", "embed-dlib", "score-torch", "score-bf16", "score-onnxruntime")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def command(processes: int, argv: list[str]) -> list[str]:
    if processes == 1:
        return [sys.executable, "-m", "hf_fiqa.cli", *argv]
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
            "--main_process_port", str(free_port()), "-m", "hf_fiqa.cli", *argv]


def timed(cmd: list[str], threads: int, detector: str) -> float:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": str(threads),
           "HF_FIQA_DETECTOR_WEIGHTS": detector}
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if done.returncode not in (0, 1):  # 1: some photo had an error row, still a complete run
        raise RuntimeError(f"{' '.join(cmd[:12])} ... failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return seconds


def make_models(folder: Path) -> dict[str, Path]:
    import torch

    from hf_fiqa.export.onnx import export_onnx
    from hf_fiqa.hub import package_quality_model
    from hf_fiqa.models.dlib_resnet import DlibResNetConfig, DlibResNetImageProcessor, DlibResNetModel
    from hf_fiqa.models.iresnet import IResNetImageProcessor
    from hf_fiqa.models.maniqa import MANIQAForImageQualityAssessment, MANIQAImageProcessor
    from hf_fiqa.models.mobilefacenet import MobileFaceNetConfig, MobileFaceNetModel
    from hf_fiqa.recipes.quality_net import small_maniqa_config

    torch.manual_seed(0)
    paths = {name: folder / name for name in ("mobilefacenet", "dlib", "hybrid")}
    MobileFaceNetModel(MobileFaceNetConfig()).eval().save_pretrained(paths["mobilefacenet"])
    IResNetImageProcessor().save_pretrained(paths["mobilefacenet"])
    DlibResNetModel(DlibResNetConfig()).eval().save_pretrained(paths["dlib"])
    DlibResNetImageProcessor().save_pretrained(paths["dlib"])
    config = small_maniqa_config(112)
    MANIQAForImageQualityAssessment(config).eval().save_pretrained(paths["hybrid"])
    MANIQAImageProcessor(crop_size=config.image_size, policy="resize").save_pretrained(paths["hybrid"])
    package_quality_model(paths["hybrid"], write_card=False)
    (paths["hybrid"] / "onnx").mkdir()
    export_onnx(paths["hybrid"], paths["hybrid"] / "onnx" / "model.onnx")
    return paths


def run_argv(run: str, models: dict[str, Path], photos_csv: Path, paths: list[str], out: Path,
             batch_size: int, workers: int) -> list[str]:
    common = ["--batch-size", str(batch_size), "--workers", str(workers), "--device", "cpu", "--no-progress"]
    if run.startswith("embed-"):
        model = models[run.split("-", 1)[1]]
        return ["embed", str(photos_csv), "--model", str(model), "--output", str(out), *common]
    backend = run.split("-", 1)[1]
    extra = {"torch": ["--backend", "torch"], "bf16": ["--backend", "torch", "--dtype", "bfloat16"],
             "onnxruntime": ["--backend", "onnxruntime"]}[backend]
    return ["score", *paths, "--model", str(models["hybrid"]), "--output", str(out.with_suffix(".csv")), *extra, *common]


def main() -> None:
    from hf_fiqa.paths import shared_dir

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=400, help="LFW photos per run")
    parser.add_argument("--runs", nargs="+", default=list(RUNS), choices=RUNS)
    parser.add_argument("--processes", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--workers", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--detector-weights", default=str(shared_dir() / "weights" / "yunet" / "face_detection_yunet.onnx"))
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1,
                        help="threads are split between processes: each gets cores // processes")
    args = parser.parse_args()

    lfw = shared_dir() / "data" / "lfw"
    with open(lfw / "labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))[: args.photos]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        with contextlib.redirect_stdout(sys.stderr):  # the ONNX exporter prints its progress; stdout is the JSON
            models = make_models(tmp / "models")
        paths = [str(lfw / r["path"]) for r in rows]
        csv_path, one_csv = tmp / "photos.csv", tmp / "one.csv"
        for target, chosen in ((csv_path, rows), (one_csv, rows[:1])):
            with open(target, "w", newline="") as fh:
                writer = csv.writer(fh)
                writer.writerow(["path", "identity"])
                writer.writerows([str(lfw / r["path"]), r["identity"]] for r in chosen)
        counter = 0
        for run in args.runs:
            for processes in args.processes:
                for workers in args.workers:
                    threads = max(1, args.cores // processes)
                    counter += 1
                    full = run_argv(run, models, csv_path, paths, tmp / f"out{counter}", args.batch_size, workers)
                    single = run_argv(run, models, one_csv, paths[:1], tmp / f"one{counter}", args.batch_size, workers)
                    startup = timed(command(processes, single), threads, args.detector_weights)
                    seconds = timed(command(processes, full), threads, args.detector_weights)
                    result = {"run": run, "processes": processes, "workers": workers, "threads_per_process": threads,
                              "photos": len(paths), "seconds": round(seconds, 2), "startup_seconds": round(startup, 2),
                              "photos_per_s": round(len(paths) / seconds, 2),
                              "steady_photos_per_s": round((len(paths) - 1) / max(seconds - startup, 1e-9), 2)}
                    print(json.dumps(result), file=sys.stderr, flush=True)
                    results.append(result)
    for result in results:  # speed-up against the one-process run without workers of the same kind
        base = next(r for r in results if r["run"] == result["run"] and r["processes"] == 1 and r["workers"] == 0)
        result["speedup_vs_1_process_0_workers"] = round(result["photos_per_s"] / base["photos_per_s"], 2)
    import torch

    print(json.dumps({"cpu_count": os.cpu_count(), "torch": torch.__version__, "batch_size": args.batch_size,
                      "results": results}, indent=1))


if __name__ == "__main__":
    main()
