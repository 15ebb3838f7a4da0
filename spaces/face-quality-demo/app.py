"""Gradio demo: every face in a photo, video or webcam frame boxed and scored on an absolute quality scale.

Runs on a Hugging Face Space (see README.md) or locally: ``python spaces/face-quality-demo/app.py``. Needs no
hf-fiqa install:

* ``HF_FIQA_MODEL`` (a Hub id or a folder of a saved hf-fiqa quality model): loaded with
  ``pipeline("face-image-quality", model=..., trust_remote_code=True)``, i.e. the pipeline code the model ships;
* no model configured: a weight-free baseline (Laplacian sharpness of the aligned face), said so on the page;
* the YuNet detector comes from ``HF_FIQA_DETECTOR_WEIGHTS`` or the Hub (``opencv/face_detection_yunet``);
* the quality components (head pose, eyes open, crops, exposure, ...: why a face scored low) need the hf-fiqa
  package (``pip install hf-fiqa``; without it the page says so) and, for eyes/mouth/pitch, a face-mesh model
  in ``HF_FIQA_FACE_MESH`` (a folder of ``hf-fiqa convert face-mesh`` or its Hub id).

Colours and bands use one ABSOLUTE 0-100 scale (the calibrated ``quality``, else the score min-max scaled over
the model's ``label_range``), never the range of the current photo: the same colour means the same quality in
every upload.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import cv2
import gradio as gr
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fiqa_remote.face_quality_pipeline import (  # noqa: E402  (vendored, see fiqa_remote/__init__.py)
    DEFAULT_QUALITY_BANDS,
    ImageReadError,
    YuNet,
    align,
    band_of,
    load_image,
    quality_0_100,
)

MODEL = os.environ.get("HF_FIQA_MODEL", "").strip()
SHARPNESS_HALF = 100.0  # Laplacian variance that the weight-free baseline maps to quality 50
MAX_VIDEO_SAMPLES = int(os.environ.get("HF_FIQA_MAX_VIDEO_SAMPLES", "40"))
BAND_COLOURS = {"poor": "#d7301f", "acceptable": "#f0a500", "good": "#1a9850"}


def _components_stage() -> tuple[Any, str]:
    """(hf-fiqa's components stage or None, a sentence for the page)."""
    try:
        from hf_fiqa.components import PhotoComponents, load_face_mesh
    except ImportError:
        return None, "Quality components need the hf-fiqa package (`pip install hf-fiqa`); not installed here."
    try:
        mesh = load_face_mesh()
    except ValueError as exc:
        return PhotoComponents(None), f"Face mesh not loaded ({exc}); components from the 5 landmarks only."
    if mesh is None:
        return PhotoComponents(None), ("Components from the 5 landmarks only: set `HF_FIQA_FACE_MESH` to a face-mesh "
                                       "model for eyes open, mouth closed and pitch.")
    return PhotoComponents(mesh), "Components with the 468-point face mesh."


def add_components(rgb: np.ndarray, faces: list[dict]) -> None:
    """Each face record gains ``components`` and ``concerns`` (hf_fiqa.components), when the package is here."""
    if COMPONENTS is None or not faces:
        return
    from hf_fiqa.components import as_records, concerns
    from hf_fiqa.faces.types import DetectedFace

    detected = [DetectedFace(box=np.asarray(f["box"], np.float32), landmarks=np.asarray(f["landmarks"], np.float32),
                             score=float(f["detection_score"])) for f in faces]
    for face, results in zip(faces, COMPONENTS(rgb, detected, detected)):
        face["components"], face["concerns"] = as_records(results), concerns(results, limit=None)


def components_view(faces: list[dict], rank: Any):
    """Bars of the chosen face's components (0-100, lowest first) and the lowest ones named."""
    face = next((f for f in faces or [] if str(f.get("rank")) == str(rank)), None)
    if face is None or "components" not in face:
        return None, COMPONENTS_NOTE if COMPONENTS is None else ""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = sorted(face["components"].items(), key=lambda kv: (kv[1]["component"] is None, kv[1]["component"] or 0))
    fig, ax = plt.subplots(figsize=(7, 0.28 * len(items) + 0.8))
    names = [name.replace("_", " ") for name, _ in items][::-1]
    values = [v["component"] if v["component"] is not None else 0 for _, v in items][::-1]
    ax.barh(names, values, color=[f"#{''.join(f'{c:02x}' for c in colour(v))}" for v in values])
    for y, (_, v) in enumerate(items[::-1]):
        ax.text(1, y, "not computed" if v["component"] is None else f"{v['component']}", va="center", fontsize=7)
    ax.set(xlim=(0, 100), xlabel="component (0-100, higher is better)", title=f"face #{face['rank']}")
    ax.axvline(50, color="grey", linewidth=0.8, linestyle="--")
    fig.tight_layout()
    lowest = face["concerns"][:3]
    missing = [n for n, v in face["components"].items() if v["component"] is None]
    text = (f"**Face #{face['rank']}, lowest components:** " + ("; ".join(lowest) if lowest else "none below 50")
            + (f". Not computed: {', '.join(missing)} (the reasons are in the CSV/JSON download)." if missing else ".")
            + f" {COMPONENTS_NOTE}")
    return fig, text


class Analyzer:
    """Photo (RGB array) -> faces with box, landmarks, detection score, 0-100 quality, band and crop."""

    def __init__(self, model: str = ""):
        self.model = model
        if model:
            from transformers import pipeline

            self.pipe = pipeline("face-image-quality", model=model, trust_remote_code=True)
            self.config = self.pipe.model.config
            self.bands = getattr(self.config, "quality_bands", None) or DEFAULT_QUALITY_BANDS
            self.detector = None
            calibrated = getattr(self.config, "quality_calibration", None) is not None
            self.description = (f"Model `{model}`: " + ("calibrated 0-100 quality." if calibrated else
                                "score min-max scaled to 0-100 over its label range (no calibration)."))
        else:
            self.pipe, self.config, self.bands = None, None, DEFAULT_QUALITY_BANDS
            self.detector = YuNet()
            self.description = (
                "**No model configured** (`HF_FIQA_MODEL` is unset): scores come from a weight-free baseline, the "
                f"Laplacian sharpness v of the aligned face, quality = 100·v/(v+{SHARPNESS_HALF:g}). It is not a learned "
                "quality; set `HF_FIQA_MODEL` to an hf-fiqa model to use one.")

    def __call__(self, rgb: np.ndarray) -> list[dict[str, Any]]:
        if self.pipe is not None:
            record = self.pipe(rgb)
            if record.get("error"):
                raise ValueError(record["error"])
            faces = record["faces"]
            calibrated = getattr(self.config, "quality_calibration", None) is not None
            for face in faces:
                face["score"] = face["quality"]
                face["quality"] = float(face["quality"] if calibrated else quality_0_100(face["quality"], self.config))
        else:
            faces = []
            for row in self.detector.detect(rgb):
                crop = align(rgb, row[4:14].astype(np.float32), 112)
                v = float(cv2.Laplacian(cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var())
                faces.append({"box": [round(float(x), 2) for x in row[:4]],
                              "landmarks": row[4:14].reshape(5, 2).round(2).tolist(),
                              "detection_score": round(float(row[14]), 4), "score": v,
                              "quality": 100.0 * v / (v + SHARPNESS_HALF)})
        add_components(rgb, faces)
        for face in faces:
            face["band"] = band_of(face["quality"], self.bands)
            face["crop"] = align(rgb, np.asarray(face["landmarks"], dtype=np.float32), 112)
        faces.sort(key=lambda f: -f["quality"])
        for rank, face in enumerate(faces, 1):
            face["rank"] = rank
        return faces


def colour(quality: float) -> tuple[int, int, int]:
    """RGB on the fixed 0-100 scale: red (0) -> amber (50) -> green (100)."""
    q = float(np.clip(quality, 0, 100)) / 100.0
    stops = np.array([[215, 48, 31], [240, 165, 0], [26, 152, 80]], dtype=np.float64)
    low = stops[0] + (stops[1] - stops[0]) * min(q * 2, 1.0)
    return tuple(int(v) for v in (low if q <= 0.5 else stops[1] + (stops[2] - stops[1]) * (q - 0.5) * 2))


def draw(rgb: np.ndarray, faces: list[dict]) -> np.ndarray:
    out = rgb.copy()
    thick = max(2, round(max(rgb.shape[:2]) / 300))
    for face in faces:
        x1, y1, x2, y2 = (int(round(v)) for v in face["box"])
        c = colour(face["quality"])
        cv2.rectangle(out, (x1, y1), (x2, y2), c, thick)
        text = f"#{face['rank']} {face['quality']:.0f} {face['band']}"
        scale = max(0.5, thick / 3)
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, max(1, thick // 2))
        top = max(0, y1 - th - 2 * thick)
        cv2.rectangle(out, (x1, top), (x1 + tw + 2 * thick, top + th + 2 * thick), c, -1)
        cv2.putText(out, text, (x1 + thick, top + th + thick), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255),
                    max(1, thick // 2), cv2.LINE_AA)
    return out


def legend_html(bands: dict) -> str:
    t = [float(v) for v in bands["thresholds"]]
    edges = [0.0, *t, 100.0]
    stops = ", ".join(f"rgb{colour(q)} {q:.0f}%" for q in range(0, 101, 10))
    ticks = "".join(f"<span style='position:absolute;left:{v}%;top:0;height:22px;border-left:2px solid #000'></span>"
                    f"<span style='position:absolute;left:{v}%;top:24px;transform:translateX(-50%)'>{v:g}</span>" for v in t)
    names = " · ".join(f"<b style='color:{BAND_COLOURS.get(label, '#333')}'>{label}</b> {edges[i]:g}-{edges[i + 1]:g}"
                       for i, label in enumerate(bands["labels"]))
    return (f"<div id='legend'><div style='position:relative;height:44px;margin:4px 12px'>"
            f"<div style='height:22px;background:linear-gradient(to right, {stops})'></div>{ticks}"
            f"<span style='position:absolute;left:0;top:24px'>0</span><span style='position:absolute;right:0;top:24px'>100</span>"
            f"</div><div>Absolute quality scale (same colours for every photo). Bands: {names}.</div></div>")


def _table(faces: list[dict]) -> list[list[Any]]:
    return [[f["rank"], round(f["quality"], 1), f["band"], round(f["detection_score"], 3),
             [round(v) for v in f["box"]]] for f in faces]


def _downloads(rows: list[dict], stem: str) -> list[str]:
    folder = Path(tempfile.mkdtemp(prefix="fiqa-"))
    json_path, csv_path = folder / f"{stem}.json", folder / f"{stem}.csv"
    json_path.write_text(json.dumps(rows, indent=1))
    with csv_path.open("w", newline="") as handle:
        keys = list(rows[0].keys()) if rows else ["rank", "quality"]
        writer = csv.DictWriter(handle, fieldnames=keys)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in row.items()})
    return [str(csv_path), str(json_path)]


def _export_rows(faces: list[dict], **extra: Any) -> list[dict]:
    return [{**extra, **{k: v for k, v in f.items() if k != "crop"}} for f in faces]


def analyse_photo(source: Any):
    """Uploaded file path or webcam array -> annotated photo, crops gallery, table, status, downloads, and the
    components of the best face (face choice, bars, lowest named)."""
    empty = (gr.update(choices=[], value=None), None, "", [])
    if source is None:
        return None, [], [], "Upload a photo (or use the webcam tab).", None, *empty
    name = getattr(source, "name", source) if not isinstance(source, np.ndarray) else "webcam frame"
    try:
        rgb = np.asarray(load_image(source if isinstance(source, np.ndarray) else str(name)))
        faces = analyzer(rgb)
    except (ImageReadError, ValueError) as exc:
        return None, [], [], f"⚠️ Error: {exc}", None, *empty
    if not faces:
        return rgb, [], [], "No face detected in this photo.", None, *empty
    gallery = [(f["crop"], f"#{f['rank']} quality {f['quality']:.1f} ({f['band']})") for f in faces]
    status = f"{len(faces)} face(s), best quality first. {analyzer.description}"
    kept = [{k: v for k, v in f.items() if k != "crop"} for f in faces]
    bars, summary = components_view(kept, 1)
    choice = gr.update(choices=[str(f["rank"]) for f in faces], value="1")
    return (draw(rgb, faces), gallery, _table(faces), status, _downloads(_export_rows(faces), "faces"), choice,
            bars, summary, kept)


def analyse_video(path: str | None, progress=gr.Progress()):
    """Sampled frames -> quality series plot (best face per frame), best frames, downloads."""
    if not path:
        return None, [], "Upload a video.", None
    capture = cv2.VideoCapture(str(path))
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    fps = float(capture.get(cv2.CAP_PROP_FPS) or 25.0) or 25.0
    if not capture.isOpened() or total <= 0:
        return None, [], f"⚠️ Error: cannot read video {Path(path).name} (no decodable frames)", None
    step = max(1, total // MAX_VIDEO_SAMPLES)
    rows, frames = [], []
    for index in progress.tqdm(range(0, total, step), desc="frames"):
        capture.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, bgr = capture.read()
        if not ok:
            break
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        faces = analyzer(rgb)
        best = faces[0] if faces else None
        rows.append({"frame": index, "time_s": round(index / fps, 3), "faces": len(faces),
                     "quality": None if best is None else round(best["quality"], 2),
                     "band": None if best is None else best["band"]})
        if best is not None:
            frames.append((best["quality"], index, draw(rgb, faces)))
    capture.release()
    if not rows:
        return None, [], f"⚠️ Error: cannot read video {Path(path).name}", None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3))
    times = [r["time_s"] for r in rows]
    qualities = [np.nan if r["quality"] is None else r["quality"] for r in rows]
    for low, high, label in zip([0, *analyzer.bands["thresholds"]], [*analyzer.bands["thresholds"], 100],
                                analyzer.bands["labels"]):
        ax.axhspan(low, high, color=BAND_COLOURS.get(label, "#ccc"), alpha=0.12)
    ax.plot(times, qualities, marker="o", color="#333")
    ax.set(xlabel="time (s)", ylabel="best face quality (0-100)", ylim=(0, 100), title="quality over time")
    fig.tight_layout()
    frames.sort(key=lambda item: -item[0])
    best = [(image, f"frame {index}: quality {q:.1f}") for q, index, image in frames[:4]]
    status = (f"{len(rows)} frames sampled (every {step}), {sum(r['faces'] > 0 for r in rows)} with a face. "
              + analyzer.description)
    return fig, best, status, _downloads(rows, "video_quality")


analyzer = Analyzer(MODEL)
COMPONENTS, COMPONENTS_NOTE = _components_stage()

with gr.Blocks(title="hf-fiqa: face image quality") as demo:
    gr.Markdown("# Face image quality\nEvery face detected, aligned and scored; colours on a fixed 0-100 scale.")
    gr.Markdown(analyzer.description, elem_id="scorer-description")
    gr.HTML(legend_html(analyzer.bands))
    with gr.Tab("Photo"):
        with gr.Row():
            photo = gr.File(label="photo (runs on upload)", file_types=["image"], elem_id="photo-input")
            annotated = gr.Image(label="faces on the absolute quality scale", elem_id="annotated")
        status = gr.Markdown(elem_id="status")
        gallery = gr.Gallery(label="face crops, best to worst", columns=6, height="auto", elem_id="crops")
        table = gr.Dataframe(headers=["rank", "quality", "band", "detection", "box"], label="faces", elem_id="table")
        files = gr.File(label="download CSV / JSON", file_count="multiple", elem_id="downloads")
        with gr.Row():
            face_choice = gr.Dropdown(label="components of face #", choices=[], elem_id="face-choice")
            components_summary = gr.Markdown(elem_id="components-summary")
        components_plot = gr.Plot(label="quality components", elem_id="components")
        faces_state = gr.State([])
        photo.upload(analyse_photo, photo, [annotated, gallery, table, status, files, face_choice, components_plot,
                                            components_summary, faces_state])
        face_choice.change(components_view, [faces_state, face_choice], [components_plot, components_summary])
    with gr.Tab("Webcam"):
        with gr.Row():
            cam = gr.Image(sources=["webcam"], type="numpy", label="webcam")
            cam_out = gr.Image(label="faces")
        cam_status = gr.Markdown()
        cam_gallery = gr.Gallery(label="face crops, best to worst", columns=6, height="auto")
        cam_table = gr.Dataframe(headers=["rank", "quality", "band", "detection", "box"], label="faces")
        cam_files = gr.File(label="download CSV / JSON", file_count="multiple")
        with gr.Row():
            cam_choice = gr.Dropdown(label="components of face #", choices=[])
            cam_summary = gr.Markdown()
        cam_plot = gr.Plot(label="quality components")
        cam_state = gr.State([])
        cam.change(analyse_photo, cam, [cam_out, cam_gallery, cam_table, cam_status, cam_files, cam_choice, cam_plot,
                                        cam_summary, cam_state])
        cam_choice.change(components_view, [cam_state, cam_choice], [cam_plot, cam_summary])
    with gr.Tab("Video"):
        video = gr.Video(label="video (runs on upload)")
        plot = gr.Plot(label="quality series")
        video_status = gr.Markdown()
        best_frames = gr.Gallery(label="best frames", columns=4, height="auto")
        video_files = gr.File(label="download CSV / JSON", file_count="multiple")
        video.upload(analyse_video, video, [plot, best_frames, video_status, video_files])

if __name__ == "__main__":
    demo.launch(server_name=os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0"),
                server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
