"""Gradio demo: upload a photo, see every face boxed and scored by hf-fiqa.

Runs on a Hugging Face Space (see README.md here) or locally: ``python spaces/face-quality-demo/app.py``.
The model comes from ``HF_FIQA_MODEL`` (a Hub id or a folder), the YuNet detector from
``HF_FIQA_DETECTOR_WEIGHTS`` or the Hub.
"""

from __future__ import annotations

import os

import gradio as gr
from transformers import pipeline

import hf_fiqa  # noqa: F401  (registers the face-image-quality task)
from hf_fiqa.pipelines.annotate import draw_faces

MODEL = os.environ.get("HF_FIQA_MODEL", "org/maniqa-sdd-fiqa")
scorer = pipeline("face-image-quality", model=MODEL, trust_remote_code=True)


def score(image, largest_only: bool, min_size: float):
    if image is None:
        return None, [], "Upload a photo."
    record = scorer(image, largest_face_only=largest_only, min_face_size=min_size)
    rows = [[f["face_index"], round(f["quality"], 4), round(f["detection_score"], 3), [round(v) for v in f["box"]]]
            for f in record["faces"]]
    status = record["error"] or record["reason"] or f"{len(rows)} face(s), best quality first"
    return draw_faces(image, record), rows, status


with gr.Blocks(title="hf-fiqa: face image quality") as demo:
    gr.Markdown(f"# Face image quality\nNo-reference quality of every face in a photo. Model: `{MODEL}`.")
    with gr.Row():
        photo = gr.Image(type="pil", label="photo")
        annotated = gr.Image(type="pil", label="faces by quality")
    with gr.Row():
        largest = gr.Checkbox(label="largest face only")
        min_size = gr.Slider(0, 200, value=0, step=8, label="minimum face size (px)")
    status = gr.Markdown()
    table = gr.Dataframe(headers=["face", "quality", "detection", "box"], label="faces")
    button = gr.Button("Score")
    button.click(score, [photo, largest, min_size], [annotated, table, status])

if __name__ == "__main__":
    demo.launch()
