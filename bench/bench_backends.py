"""Scoring backends on CPU: torch fp32, torch bf16 and onnxruntime fp32, per model; speed and agreement.

For each model, the same weights run a forward pass over the same batch of views in every backend, in turn
(round-robin over ``--repeats``, after one warm-up each, so a drift in the machine's speed hits all alike).
Prints one JSON document: seconds per batch (min and median) and images/s per backend, the export (time, file
size, session start) and the largest difference of each backend's output from torch fp32:

* ``score``: the model's ``score`` (its first column), in its label units;
* ``quality``: the 0-100 quality (:func:`hf_fiqa.quality_scale.quality_0_100`), only where the config has a
  ``quality_calibration``; for bf16 both the model's own ``quality`` output (computed in bfloat16, as
  ``hf-fiqa score --dtype bfloat16`` returns it) and the quality of the bf16 score computed in float64.

Models (``--models``): ``maniqa-b8`` (MANIQA-B/8 at 224, the paper's), ``hybrid`` (the CPU hybrid the main job
trains: ``small_maniqa_config(64)`` of :mod:`hf_fiqa.recipes.quality_net` on dlib-chip crops, labels 0-100;
``--hybrid-model DIR`` loads a trained folder with its calibration instead of random weights), ``hybrid-hub``
(``hub_configs/maniqa-sdd-fiqa-lfw.yaml``: 112 px) and ``musiq`` (paper size, 224 face crops: 242 patches).

bf16: the model is cast to bfloat16 (``model.to(torch.bfloat16)``, inputs cast too: what ``--dtype bfloat16``
does); ``--bf16 autocast`` keeps float32 weights under ``torch.autocast("cpu", torch.bfloat16)``, ``both`` runs
the two, ``none`` neither. The default, ``auto``, casts, but on a CPU without native bfloat16 (AVX512-BF16, AMX),
where torch's bf16 matmuls are many times slower than fp32, a model whose bf16 runs are projected (fp32 forward
x measured bf16/fp32 matmul ratio) to take over 3 ``--budget`` is skipped, with the reason in ``bf16_skipped``.

onnxruntime: the graph of :func:`hf_fiqa.export.onnx.export_onnx` (the ``hf-fiqa export onnx`` path:
``save_pretrained`` to a temporary folder, then exported from it, checked against torch), one CPU session with
``--threads`` intra-op threads; ``--no-onnx`` leaves it out. ``--repeats 0`` measures agreement only.

Inputs: real aligned faces when the shared data is there (YuNet on ``--faces`` LFW photos, cut to each model's
crop spec, its processor's views), else random pixels; ``inputs`` in the JSON says which. Weights are random
(nothing is downloaded) unless ``--hybrid-model`` is given; speed does not depend on their values.

    python bench/bench_backends.py --batch 8 --threads 2
    python bench/bench_backends.py --models maniqa-b8 hybrid --batch 1 --threads 2
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MODELS = ("maniqa-b8", "hybrid", "hybrid-hub", "musiq")
REPO = Path(__file__).resolve().parents[1]


def _lfw_photos(count: int) -> list[Path] | None:
    from hf_fiqa.paths import shared_dir

    labels = shared_dir() / "data" / "lfw" / "labels.csv"
    weights = shared_dir() / "weights" / "yunet" / "face_detection_yunet.onnx"
    if not (labels.is_file() and weights.is_file()):
        return None
    import csv

    with open(labels, newline="") as fh:
        rows = list(csv.DictReader(fh))
    step = max(1, len(rows) // count)  # spread over identities, deterministic
    return [labels.parent / r["path"] for r in rows[::step][:count]]


def _build(name: str, hybrid_model: str | None):
    """(model, processor, description) with random weights (seed 0), or a trained hybrid folder."""
    import torch

    from hf_fiqa.models.maniqa import MANIQAConfig, MANIQAForImageQualityAssessment, MANIQAImageProcessor

    torch.manual_seed(0)
    if name == "maniqa-b8":
        config = MANIQAConfig()
        return MANIQAForImageQualityAssessment(config), MANIQAImageProcessor(crop_size=224, policy="resize"), \
            "MANIQAConfig() (ViT-B/8, 224), random weights"
    if name == "hybrid":
        if hybrid_model:
            model = MANIQAForImageQualityAssessment.from_pretrained(hybrid_model)
            processor = MANIQAImageProcessor.from_pretrained(hybrid_model)
            return model, processor, f"trained folder {hybrid_model}"
        from hf_fiqa.models.dlib_resnet.configuration_dlib_resnet import DLIB_CHIP_TEMPLATE_150
        from hf_fiqa.recipes.quality_net import small_maniqa_config

        size = 64  # RecipeConfig.image_size
        template = [[x / 150 * size, y / 150 * size] for x, y in DLIB_CHIP_TEMPLATE_150]
        config = small_maniqa_config(size, alignment_template=template)
        return MANIQAForImageQualityAssessment(config), MANIQAImageProcessor(crop_size=size, policy="resize"), \
            "small_maniqa_config(64) as the main job (dlib chip template, label_range 0-100), random weights"
    if name == "hybrid-hub":
        import yaml

        raw = yaml.safe_load((REPO / "hub_configs" / "maniqa-sdd-fiqa-lfw.yaml").read_text())
        kwargs = dict(raw["model"].get("kwargs", {}))
        config = MANIQAConfig.tiny(**kwargs) if raw["model"].get("preset") == "tiny" else MANIQAConfig(**kwargs)
        config.label_range = [0.0, 100.0]  # set from the pseudo-labels in training
        return MANIQAForImageQualityAssessment(config), \
            MANIQAImageProcessor(crop_size=config.image_size, policy="resize"), \
            "hub_configs/maniqa-sdd-fiqa-lfw.yaml (label_range 0-100), random weights"
    if name == "musiq":
        from hf_fiqa.models.musiq import MUSIQConfig, MUSIQForImageQualityAssessment, MUSIQImageProcessor

        from hf_fiqa.models.musiq.modeling_musiq import ZERO_INIT

        model = MUSIQForImageQualityAssessment(MUSIQConfig())
        # The official init zeroes the head, [CLS] and each bottleneck's last GroupNorm scale: every score would be
        # exactly 0 and agree trivially. Give them values so the outputs (and their differences) mean something.
        with torch.no_grad():
            for module in model.modules():
                if getattr(module, ZERO_INIT, False):
                    torch.nn.init.normal_(module.weight, std=0.02) if isinstance(module, torch.nn.Linear) \
                        else torch.nn.init.ones_(module.weight)
            for name, param in model.named_parameters():
                if name.endswith("cls_token"):
                    torch.nn.init.normal_(param, std=0.02)
        return model, MUSIQImageProcessor(), \
            "MUSIQConfig() (paper size), MUSIQImageProcessor() on 224 crops, random weights (zero-inits made random)"
    raise ValueError(name)


def _crops(model, processor, photos, count: int, cropper) -> tuple[list[np.ndarray], str]:
    from hf_fiqa.scorers import crop_spec, scorer_for_model

    spec = crop_spec(scorer_for_model(model, processor))
    if photos is not None:
        crops = []
        for path in photos:
            photo = cropper(str(path), specs=[spec], select="largest")
            if photo.ok:
                crops.append(photo.crops[spec][0].crop)
        if crops:
            return crops[:count], f"lfw-yunet ({len(crops[:count])} aligned faces of {len(photos)} photos, " \
                f"{spec.size} px, {'ArcFace' if spec.template is None else 'model'} template)"
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (spec.size, spec.size, 3), dtype=np.uint8) for _ in range(count)], \
        f"random pixels ({count} x {spec.size} px)"


def _first(score):
    return score if score.ndim == 1 else score[:, 0]


def _stats(times: list[float], batch: int) -> dict:
    median = statistics.median(times)
    return {"min_s": round(min(times), 4), "median_s": round(median, 4), "max_s": round(max(times), 4),
            "images_per_s": round(batch / median, 3), "runs": len(times)}


def _bf16_modes(choice: str) -> tuple[str, ...]:
    return {"auto": ("cast",), "cast": ("cast",), "autocast": ("autocast",), "both": ("cast", "autocast"),
            "none": ()}[choice]


def bf16_matmul_ratio(threads: int) -> float:
    """How many times slower a bfloat16 matmul (1024x384 @ 384x384, the size of a small ViT's) runs than float32."""
    import torch

    a, b = torch.randn(1024, 384), torch.randn(384, 384)
    best = {}
    for dtype in (torch.float32, torch.bfloat16):
        x, y = a.to(dtype), b.to(dtype)
        x @ y
        runs = []
        for _ in range(5):
            start = time.perf_counter()
            x @ y
            runs.append(time.perf_counter() - start)
        best[dtype] = min(runs)
    return best[torch.bfloat16] / best[torch.float32]


def bench_model(name: str, args, photos, cropper, native_bf16: bool = True, bf16_ratio: float = 1.0) -> dict:
    import onnxruntime as ort
    import torch

    from hf_fiqa.export.onnx import export_onnx
    from hf_fiqa.quality_scale import quality_0_100

    model, processor, what = _build(name, args.hybrid_model)
    model = model.float().eval()
    config = model.config
    calibration = getattr(config, "quality_calibration", None)
    crops, inputs_desc = _crops(model, processor, photos, args.faces, cropper)
    batch_np = processor(crops, return_tensors="np")
    names = [k for k in batch_np.keys() if k != "crop_to_image"]
    feed = {}
    for key in names:
        value = np.asarray(batch_np[key])
        feed[key] = value.astype(np.float32) if np.issubdtype(value.dtype, np.floating) else value.astype(np.int64)
    views = len(feed[names[0]])
    chunks = [slice(s, s + args.batch) for s in range(0, views, args.batch)]
    timed = chunks[0] if views >= args.batch else slice(0, views)
    tensors = {k: torch.from_numpy(v) for k, v in feed.items()}
    result = {"model": name, "what": what, "inputs": inputs_desc, "views": views,
              "parameters_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
              "calibrated": bool(calibration),
              "sequence_length": int(feed["pixel_values"].shape[1]) if name == "musiq" else None}

    # -- onnxruntime: export from a saved folder (as `hf-fiqa export onnx DIR OUT` does) ----------------------
    with tempfile.TemporaryDirectory() as tmp:
        session = None
        if not args.no_onnx:
            folder = Path(tmp) / "model"
            model.save_pretrained(folder)
            processor.save_pretrained(folder)
            out = folder / "onnx" / "model.onnx"
            start = time.perf_counter()
            with contextlib.redirect_stdout(sys.stderr):
                report = export_onnx(folder, out)  # check=True: onnxruntime vs torch on a batch of 3, 1e-4
            export_s = time.perf_counter() - start
            options = ort.SessionOptions()
            options.intra_op_num_threads = args.threads
            start = time.perf_counter()
            session = ort.InferenceSession(str(out), options, providers=["CPUExecutionProvider"])
            session_s = time.perf_counter() - start
            result["export"] = {"export_s": round(export_s, 2), "session_s": round(session_s, 2),
                                "onnx_mb": round(out.stat().st_size / 2**20, 1),
                                "check_max_abs_diff": report.max_abs_diff.get("score")}

        bf16_modes = _bf16_modes(args.bf16)
        if args.bf16 == "auto" and bf16_modes and not native_bf16:
            # No native bfloat16 here: torch's bf16 matmuls fall back to slow kernels. Project the bf16 cost from
            # an fp32 forward and the bf16/fp32 matmul ratio, and skip when it would not fit 3 budgets.
            start = time.perf_counter()
            with torch.inference_mode():
                model(**{k: v[chunks[0]] for k, v in tensors.items()})
            projected = (time.perf_counter() - start) * bf16_ratio * (len(chunks) + 1)
            if projected > 3 * args.budget:
                result["bf16_skipped"] = (f"no native bfloat16 on this CPU: bf16 matmuls run {bf16_ratio:.1f}x slower "
                                          f"than fp32, so the bf16 runs would take about {projected:.0f} s "
                                          "(give --bf16 cast to run them anyway)")
                bf16_modes = ()
        bf16_model = copy.deepcopy(model).to(torch.bfloat16).eval() if "cast" in bf16_modes else None

        def torch_fp32(sl):
            with torch.inference_mode():
                out = model(**{k: v[sl] for k, v in tensors.items()})
            return _first(out.score).double().numpy(), None

        def torch_bf16_cast(sl):
            chunk = {k: (v[sl].to(torch.bfloat16) if v.is_floating_point() else v[sl]) for k, v in tensors.items()}
            with torch.inference_mode():
                out = bf16_model(**chunk)
            quality = getattr(out, "quality", None)
            return _first(out.score).double().numpy(), None if quality is None else _first(quality).double().numpy()

        def torch_bf16_autocast(sl):
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
                out = model(**{k: v[sl] for k, v in tensors.items()})
            quality = getattr(out, "quality", None)
            return _first(out.score).double().numpy(), None if quality is None else _first(quality).double().numpy()

        def onnxruntime_fp32(sl):
            return session.run(["score"], {k: v[sl] for k, v in feed.items()})[0].astype(np.float64), None

        backends = {"torch-fp32": torch_fp32}
        if "cast" in bf16_modes:
            backends["torch-bf16-cast"] = torch_bf16_cast
        if "autocast" in bf16_modes:
            backends["torch-bf16-autocast"] = torch_bf16_autocast
        if session is not None:
            backends["onnxruntime-fp32"] = onnxruntime_fp32

        # Agreement over every view (the first chunk doubles as each backend's warm-up).
        outputs = {}
        for key, fn in backends.items():
            parts = [fn(sl) for sl in chunks]
            scores = np.concatenate([p[0] for p in parts])
            model_quality = None if parts[0][1] is None else np.concatenate([p[1] for p in parts])
            outputs[key] = (scores, model_quality)
        # Timing: round-robin over the backends on the first batch, `repeats` times; a backend stops early once
        # its timed runs passed `budget` seconds (after at least 1), so a slow one cannot eat the run.
        times = {key: [] for key in backends}
        for _ in range(args.repeats):
            for key, fn in backends.items():
                if times[key] and sum(times[key]) >= args.budget:
                    continue
                start = time.perf_counter()
                fn(timed)
                times[key].append(time.perf_counter() - start)

    reference = outputs["torch-fp32"][0]
    ref_quality = quality_0_100(reference, config) if calibration else None
    result["score_range_fp32"] = [round(float(reference.min()), 6), round(float(reference.max()), 6)]
    result["backends"] = {}
    batch = timed.stop - timed.start
    for key in backends:
        entry = _stats(times[key], batch) if times[key] else {}
        scores, model_quality = outputs[key]
        if key != "torch-fp32":
            entry["max_abs_score_diff"] = float(np.abs(scores - reference).max())
            if calibration:
                entry["max_abs_quality_diff"] = float(np.abs(quality_0_100(scores, config) - ref_quality).max())
                if model_quality is not None:  # the model's own quality output, in its dtype
                    entry["max_abs_quality_diff_model_output"] = float(np.abs(model_quality - ref_quality).max())
        result["backends"][key] = entry
    if args.repeats:
        torch_median = result["backends"]["torch-fp32"]["median_s"]
        for key, entry in result["backends"].items():
            entry["speedup_vs_torch_fp32"] = round(torch_median / entry["median_s"], 3)
        within = [k for k, e in result["backends"].items() if e.get("max_abs_score_diff", 0.0) <= 1e-4]
        result["fastest_within_1e-4"] = min(within, key=lambda k: result["backends"][k]["median_s"])
    del model, bf16_model, session
    gc.collect()
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    ap.add_argument("--batch", type=int, default=8, help="views per forward pass (timed on the first batch)")
    ap.add_argument("--threads", type=int, default=2, help="torch and onnxruntime intra-op threads")
    ap.add_argument("--repeats", type=int, default=5,
                    help="timed runs per backend after the warm-up (0: agreement only)")
    ap.add_argument("--budget", type=float, default=45.0,
                    help="seconds of timed runs per backend and model after which it stops repeating (min 2 runs)")
    ap.add_argument("--faces", type=int, default=16, help="faces (views) compared across backends")
    ap.add_argument("--bf16", choices=("auto", "cast", "autocast", "both", "none"), default="auto",
                    help="auto: cast, skipped for a model whose bf16 runs would take over 3 budgets (no native bf16)")
    ap.add_argument("--no-onnx", action="store_true", help="skip the export and onnxruntime (torch backends only)")
    ap.add_argument("--hybrid-model", default=None, help="a trained main-job folder (runs/sdd-fiqa/maniqa-sdd-fiqa)")
    args = ap.parse_args(argv)
    if args.batch <= 0 or args.repeats < 0 or args.faces <= 0 or args.threads <= 0:
        ap.error("--batch, --threads and --faces must be positive, --repeats not negative")

    import onnxruntime as ort
    import torch

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    photos = _lfw_photos(args.faces + 4)  # a few spare in case YuNet misses one
    cropper = None
    if photos is not None:
        from hf_fiqa.faces import FaceCropper
        from hf_fiqa.paths import shared_dir

        cropper = FaceCropper(detector_weights=str(shared_dir() / "weights" / "yunet" / "face_detection_yunet.onnx"))
    native_bf16 = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    ratio = bf16_matmul_ratio(args.threads) if _bf16_modes(args.bf16) else None
    load = [round(x, 2) for x in os.getloadavg()]
    results = [bench_model(name, args, photos, cropper, native_bf16, ratio or 1.0) for name in args.models]
    print(json.dumps({
        "benchmark": "backends", "batch": args.batch, "threads": torch.get_num_threads(), "repeats": args.repeats,
        "budget_s": args.budget, "bf16": args.bf16, "inputs": "lfw-yunet" if photos is not None else "random",
        "cpu_bf16_native": native_bf16, "bf16_matmul_slowdown": None if ratio is None else round(ratio, 2),
        "load_average_1_5_15": {"start": load, "end": [round(x, 2) for x in os.getloadavg()]},
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "results": results, "total_s": round(time.perf_counter() - start, 1),
        "versions": {"torch": torch.__version__, "onnxruntime": ort.__version__, "python": platform.python_version()},
        "cpu": platform.processor() or platform.machine(),
    }, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
