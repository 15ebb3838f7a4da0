"""Milliseconds per face for the quality components (hf_fiqa.components) on real LFW faces; JSON on stdout.

    python bench/bench_components.py                       # 128 LFW photos, batches of 32, one thread
    python bench/bench_components.py --photos 256 --batch 32 --repeats 5

Faces come from YuNet on LFW photos of ``../shared`` (detection is timed separately and is *not* part of the
component figures). Three timings per mode, each the best of ``--repeats`` passes over all faces:

* ``single``: ``compute_components(face)`` one face at a time;
* ``batched``: ``compute_components_batch`` over chunks of ``--batch`` faces;
* per component: ``compute_components(face, [name])`` alone (CPU ms), which includes whatever shared work that
  component needs (the aligned face and its histograms for the pixel measures), so the parts do not add up.

Both wall-clock and CPU time of this process are reported: on a shared machine the wall clock also counts time
the process waited for a core; CPU time is the cost on one core.

Each mode runs twice: with the 5 detector points only, and with synthetic dense landmarks (MediaPipe's canonical
face placed on the 5 points; it times the dense code paths, it is not a landmark model). With ``--face-mesh FOLDER``
(``hf-fiqa convert face-mesh``) it also times the real face mesh per face (one photo's faces per call, as
:class:`hf_fiqa.components.PhotoComponents` runs it) and the components on its landmarks. OpenCV, BLAS and torch are
held to one thread: the figures are for one CPU core.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from hf_fiqa.components import COMPONENT_NAMES, FaceInput, compute_components, compute_components_batch  # noqa: E402
from hf_fiqa.components.canonical_face import place_canonical_face  # noqa: E402
from hf_fiqa.faces import YuNetDetector  # noqa: E402
from hf_fiqa.io import load_image  # noqa: E402
from hf_fiqa.paths import shared_dir  # noqa: E402


def _best(fn, repeats: int) -> tuple[float, float]:
    """(best wall-clock seconds, best CPU seconds of this process) over ``repeats`` runs of ``fn``."""
    wall = cpu = float("inf")
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall, cpu = min(wall, time.perf_counter() - t0), min(cpu, time.process_time() - c0)
    return wall, cpu


def _faces(n_photos: int) -> tuple[list[FaceInput], dict]:
    root = shared_dir() / "data" / "lfw"
    weights = shared_dir() / "weights" / "yunet" / "face_detection_yunet.onnx"
    if not (root / "labels.csv").is_file() or not weights.is_file():
        raise SystemExit(f"LFW photos or YuNet weights not found under {shared_dir()} (set HF_FIQA_SHARED)")
    with open(root / "labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    picks = [rows[i] for i in np.linspace(0, len(rows) - 1, n_photos).round().astype(int)]
    detector = YuNetDetector(weights)
    faces, detect_ms = [], []
    for row in picks:
        photo = np.asarray(load_image(root / row["path"]))
        t0 = time.perf_counter()
        found = detector.detect(photo)
        detect_ms.append((time.perf_counter() - t0) * 1e3)
        if found:
            faces.append(FaceInput.from_detection(photo, found[0], all_faces=found))
    return faces, {"photos": len(picks), "faces": len(faces), "detect_ms_mean": round(float(np.mean(detect_ms)), 2)}


def _with_dense(faces: list[FaceInput]) -> list[FaceInput]:
    return [FaceInput(f.photo, f.box, f.landmarks, f.score, f.n_faces, f.other_boxes,
                      place_canonical_face(f.landmarks)) for f in faces]


def _run(faces: list[FaceInput], batch: int, repeats: int, per_component: int) -> dict:
    n = len(faces)
    single = _best(lambda: [compute_components(f) for f in faces], repeats)
    chunks = [faces[i: i + batch] for i in range(0, n, batch)]
    batched = _best(lambda: [compute_components_batch(c) for c in chunks], repeats)
    sample = faces[:per_component]
    parts = {name: round(_best(lambda name=name: [compute_components(f, [name]) for f in sample], repeats)[1]
                         / len(sample) * 1e3, 3) for name in COMPONENT_NAMES}
    results = compute_components_batch(faces)
    computed = {name: sum(r[name].ok for r in results) for name in COMPONENT_NAMES}
    return {
        "single_ms_per_face": {"wall": round(single[0] / n * 1e3, 3), "cpu": round(single[1] / n * 1e3, 3)},
        "batched_ms_per_face": {"wall": round(batched[0] / n * 1e3, 3), "cpu": round(batched[1] / n * 1e3, 3)},
        "batch_size": batch,
        "per_component_alone_cpu_ms_per_face": parts,
        "faces_computed_per_component": computed,
    }


def _mesh(faces: list[FaceInput], folder: str, batch: int, repeats: int, per_component: int) -> dict:
    """The real face mesh on each face's photo (ms per face), then the components on its landmarks."""
    import torch

    from hf_fiqa.components import load_face_mesh
    from hf_fiqa.faces.types import DetectedFace

    torch.set_num_threads(1)
    landmarker = load_face_mesh(folder)
    dets = [DetectedFace(box=f.box, landmarks=f.landmarks, score=f.score) for f in faces]
    landmarker.run_faces(faces[0].photo, dets[:1])  # warm-up
    results = []
    wall, cpu = _best(lambda: results.__setitem__(slice(None), [landmarker.run_faces(f.photo, [d])
                                                                for f, d in zip(faces, dets)]), repeats)
    meshed = [FaceInput(f.photo, f.box, f.landmarks, f.score, f.n_faces, f.other_boxes, r.landmarks[0],
                        float(r.presence[0])) for f, r in zip(faces, results)]
    return {"face_mesh_ms_per_face": {"wall": round(wall / len(faces) * 1e3, 3), "cpu": round(cpu / len(faces) * 1e3, 3)},
            "torch": torch.__version__, **_run(meshed, batch, repeats, per_component)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=128, help="LFW photos, spread over the label list")
    ap.add_argument("--batch", type=int, default=32, help="faces per compute_components_batch call")
    ap.add_argument("--repeats", type=int, default=3, help="timed passes; the best is reported")
    ap.add_argument("--per-component", type=int, default=32, help="faces for the per-component timings")
    ap.add_argument("--face-mesh", default=None, help="a converted face-mesh folder: also time the real mesh")
    args = ap.parse_args(argv)

    cv2.setNumThreads(1)
    faces, detection = _faces(args.photos)
    compute_components_batch(faces[:2])  # warm-up: canonical face region, imports
    report = {
        "detection": detection,
        "five_points": _run(faces, args.batch, args.repeats, args.per_component),
        "synthetic_dense": _run(_with_dense(faces), args.batch, args.repeats, args.per_component),
        **({"face_mesh": _mesh(faces, args.face_mesh, args.batch, args.repeats, args.per_component)}
           if args.face_mesh else {}),
        "cv2_threads": cv2.getNumThreads(),
        "opencv": cv2.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
    }
    json.dump(report, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
