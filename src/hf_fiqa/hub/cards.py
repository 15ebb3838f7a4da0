"""Model cards: a README.md with Hub metadata and ``model-index`` results for every exported model.

``write_model_card(folder, task=..., results=..., datasets=..., command=...)`` writes ``folder/README.md``,
which :class:`huggingface_hub.ModelCard` parses: metadata (license, library_name, pipeline_tag, tags, datasets,
base_model), ``model-index`` results from the run's own evaluation, and the sections a user needs (intended
use, how to score, output units and quality bands, limitations and known biases, training data, the command
that produced the model, citations).

Tasks: ``"fiqa"`` (face image quality trained on SDD-FIQA pseudo-labels; results: EDC pAUC per threshold),
``"iqa"`` (image quality regressing MOS; results: SRCC/PLCC/KRCC/RMSE), ``"recognition"`` (face recognizer;
results: EER; its embedding magnitude is MagFace quality). ``task=None`` infers it from ``config.json``.

``results`` is the flat mapping the training loop's validation returns (``eval_results.json``): keys
``pauc_<threshold label>`` (EDC pAUC at that threshold), ``srcc``, ``plcc``/``plcc_raw``, ``krcc``,
``rmse``/``rmse_raw``, ``eer``; other keys (``step``, pair counts) are listed in the card's table but not in
``model-index``. Lower pAUC and EER are better; higher SRCC/PLCC/KRCC are better.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

TASKS = ("fiqa", "iqa", "recognition")

# key (or key prefix) -> (model-index metric type, human name)
_METRICS = {
    "srcc": ("spearmanr", "SRCC"),
    "plcc": ("pearsonr", "PLCC (after the 4-parameter logistic fit)"),
    "plcc_raw": ("pearsonr", "PLCC (raw)"),
    "krcc": ("kendalltau", "KRCC"),
    "rmse": ("rmse", "RMSE (after the logistic fit)"),
    "rmse_raw": ("rmse", "RMSE (raw)"),
    "eer": ("eer", "EER"),
}

_TASK_INFO = {
    "fiqa": dict(
        title="face image quality (SDD-FIQA)", pipeline_tag="image-classification", task_type="face-image-quality-assessment",
        task_name="Face image quality assessment", tags=["face-image-quality-assessment", "fiqa", "sdd-fiqa"],
    ),
    "iqa": dict(
        title="image quality (MOS regression)", pipeline_tag="image-classification", task_type="image-quality-assessment",
        task_name="No-reference image quality assessment", tags=["image-quality-assessment", "iqa", "no-reference-iqa"],
    ),
    "recognition": dict(
        title="face recognition (embeddings; magnitude = MagFace quality)", pipeline_tag="image-feature-extraction",
        task_type="face-verification", task_name="Face verification", tags=["face-recognition", "magface", "arcface"],
    ),
}

_CITATIONS = {
    "maniqa": "@inproceedings{yang2022maniqa, title={MANIQA: Multi-dimension Attention Network for No-Reference Image "
              "Quality Assessment}, author={Yang, Sidi and others}, booktitle={CVPR Workshops}, year={2022}}",
    "musiq": "@inproceedings{ke2021musiq, title={MUSIQ: Multi-scale Image Quality Transformer}, author={Ke, Junjie "
             "and others}, booktitle={ICCV}, year={2021}}",
    "sdd-fiqa": "@inproceedings{ou2021sddfiqa, title={SDD-FIQA: Unsupervised Face Image Quality Assessment with "
                "Similarity Distribution Distance}, author={Ou, Fu-Zhao and others}, booktitle={CVPR}, year={2021}}",
    "lightqnet": "@article{chen2021lightqnet, title={LightQNet: Lightweight Deep Face Quality Assessment for "
                 "Risk-Controlled Face Recognition}, author={Chen, Kai and Yi, Taihe and Lv, Qi}, journal={IEEE Signal "
                 "Processing Letters}, year={2021}}",
    "magface": "@inproceedings{meng2021magface, title={MagFace: A Universal Representation for Face Recognition and "
               "Quality Assessment}, author={Meng, Qiang and others}, booktitle={CVPR}, year={2021}}",
}


def infer_task(config: Mapping[str, Any]) -> str:
    """``recognition`` for recognizers, ``fiqa`` for quality models on the SDD-FIQA 0-100 scale, else ``iqa``."""
    if "embedding_size" in config:
        return "recognition"
    calibration = config.get("quality_calibration") or {}
    if "genuine" in str(calibration.get("meaning", "")).lower() or config.get("alignment_template") is not None:
        return "fiqa"
    if config.get("label_range") == [0.0, 100.0] or config.get("label_range") == [0, 100]:
        return "fiqa"
    return "iqa"


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value))


def eval_results(results: Mapping[str, Any] | None, *, task: str, model_name: str,
                 dataset: Mapping[str, str] | None = None) -> list:
    """``huggingface_hub.EvalResult`` entries for ``results`` (see the module docstring for the keys)."""
    from huggingface_hub import EvalResult

    if not results:
        return []
    info = _TASK_INFO[task]
    dataset = dict(dataset or {})
    common = dict(task_type=info["task_type"], task_name=info["task_name"],
                  dataset_type=dataset.get("type", "custom"), dataset_name=dataset.get("name", "validation split"),
                  dataset_split=dataset.get("split"), dataset_config=dataset.get("config"))
    out = []
    for key, value in results.items():
        if not _finite(value):
            continue
        if key.startswith("pauc_") or key == "pauc":
            label = key[5:] or "default threshold"
            out.append(EvalResult(**common, metric_type="pauc", metric_name=f"EDC pAUC ({label})",
                                  metric_value=float(value), metric_config=label))
        elif key in _METRICS:
            kind, name = _METRICS[key]
            out.append(EvalResult(**common, metric_type=kind, metric_name=name, metric_value=float(value)))
    return out


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _results_table(results: Mapping[str, Any] | None) -> str:
    if not results:
        return "No evaluation was recorded with this export."
    rows = ["| metric | value |", "| --- | --- |"]
    for key, value in results.items():
        shown = f"{value:.4g}" if _finite(value) else str(value)
        rows.append(f"| `{key}` | {shown} |")
    return "\n".join(rows)


def _bands_text(config: Mapping[str, Any]) -> str:
    bands = config.get("quality_bands")
    if not bands:
        return ""
    labels, thresholds = bands.get("labels", []), bands.get("thresholds", [])
    edges = [None, *thresholds, None]
    parts = []
    for i, label in enumerate(labels):
        lo, hi = edges[i], edges[i + 1]
        span = f"< {hi:g}" if lo is None else (f">= {lo:g}" if hi is None else f"{lo:g} to < {hi:g}")
        parts.append(f"`{label}` {span}")
    source = ("the calibrated 0-100 `quality`" if config.get("quality_calibration")
              else "the score min-max scaled to 0-100 over `label_range`")
    return (f"\n`pipeline(\"image-classification\", ...)` reports quality bands from {source}: "
            + ", ".join(parts) + " (thresholds in `config.quality_bands`, editable).\n")


# Weights whose licence is not the project's: dlib's recognizer was released into the public domain.
WEIGHT_LICENSES: dict[str, tuple[str, str | None]] = {"dlib_resnet": ("other", "public-domain"),
                                                       "lightqnet": ("mit", None)}


def write_model_card(
    folder: str | os.PathLike,
    *,
    task: str | None = None,
    results: Mapping[str, Any] | None = None,
    datasets: Iterable[str] = (),
    command: str | None = None,
    base_model: str | None = None,
    eval_dataset: Mapping[str, str] | None = None,
    model_name: str | None = None,
    license: str | None = None,
    training_data: str | None = None,
    converted_from: str | None = None,
    extra_tags: Iterable[str] = (),
) -> Path:
    """Write ``folder/README.md`` (overwriting it) and return its path.

    Args:
        folder: a ``save_pretrained`` folder (its ``config.json`` is read for the family, units and bands).
        task: ``"fiqa"``, ``"iqa"`` or ``"recognition"``; ``None`` infers it from the config.
        results: the run's own evaluation (see the module docstring); goes into ``model-index``.
        datasets: Hub dataset ids (or names) the model was trained on (``datasets:`` metadata).
        command: the command line that produced the model (shown verbatim).
        base_model: Hub id of the model it was fine-tuned or converted from.
        eval_dataset: ``{"name", "type", "split"}`` of the evaluation data for ``model-index``.
        model_name: the name in ``model-index`` (default: the folder name).
        training_data: a paragraph on the training data (default: generated from ``datasets``).
        converted_from: for converted official checkpoints, where the weights came from.
        license: Hub licence id; default: that of the weights' origin (:data:`WEIGHT_LICENSES`), else apache-2.0.
    """
    from huggingface_hub import ModelCard, ModelCardData

    folder = Path(folder)
    config = _read_json(folder / "config.json")
    task = task or infer_task(config)
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    info = _TASK_INFO[task]
    model_type = str(config.get("model_type", "model"))
    model_name = model_name or folder.resolve().name
    datasets = [d for d in datasets if d]
    tags = list(dict.fromkeys(["hf-fiqa", model_type, *info["tags"], "custom_code", *extra_tags]))
    license, license_name = (license, None) if license else WEIGHT_LICENSES.get(model_type, ("apache-2.0", None))
    data = ModelCardData(
        license=license, license_name=license_name, library_name="transformers", pipeline_tag=info["pipeline_tag"], tags=tags,
        datasets=datasets or None, base_model=base_model, model_name=model_name,
        eval_results=eval_results(results, task=task, model_name=model_name, dataset=eval_dataset) or None,
    )
    body = _body(folder, config, task, info, model_type, model_name, results, datasets, command, training_data,
                 converted_from, base_model)
    card = ModelCard(f"---\n{data.to_yaml()}\n---\n{body}")
    path = folder / "README.md"
    card.save(str(path))
    return path


def _body(folder, config, task, info, model_type, model_name, results, datasets, command, training_data,
          converted_from, base_model) -> str:
    label_range = config.get("label_range")
    calibration = config.get("quality_calibration")
    if task == "recognition":
        units = ("`embeddings` (B, D) are raw (not L2-normalised); cosine similarity compares faces. The embedding "
                 "length `norms` is the MagFace quality (higher = more recognisable); its scale depends on the "
                 "checkpoint and is not calibrated.")
    else:
        units = ("`score` is in the units of the training labels"
                 + (f" (`label_range` {label_range})" if label_range else " (the head's own output: no `label_range`)")
                 + ", higher = better.")
        if calibration:
            units += (" `quality` is the calibrated 0-100 scale: " + str(calibration.get("meaning", "see config")) + ".")
    how = _how_to_score(task, model_name)
    data_text = training_data or (
        ("Trained on: " + ", ".join(f"`{d}`" for d in datasets) + ". See each dataset's card for its terms.")
        if datasets else "The training data was not recorded with this export.")
    if converted_from:
        data_text = (f"Weights converted from the official release `{converted_from}` (trained by its authors; see "
                     "their paper for the data). " + (data_text if datasets or training_data else ""))
    if task == "fiqa":
        intended = (
            "Ranking and filtering face photos by how useful they are for face recognition: reject or recapture "
            "poor enrolment photos, pick the best frames of a video, weight faces in template aggregation, report "
            "quality distributions of a dataset. The number predicts recognition utility (SDD-FIQA: the "
            "Wasserstein distance between a face's genuine and impostor similarity distributions under a "
            "recognizer), not aesthetics.")
        labels = ("SDD-FIQA pseudo-labels: no human ratings. Each training face's label comes from a face "
                  "recognizer's genuine and impostor similarities, so the model learns what that recognizer finds "
                  "hard.")
    elif task == "iqa":
        intended = ("No-reference perceptual quality of photos (blur, noise, compression, exposure), as people rate "
                    "it (MOS). On a face photo, crop or align the face first (the face-image-quality pipeline does).")
        labels = "Mean opinion scores of human raters."
    else:
        intended = ("Face embeddings for verification/identification on aligned crops, and MagFace quality (the "
                    "embedding length) as a face image quality measure.")
        labels = "Identity labels (ArcFace/MagFace margin losses)."
    biases = (
        "- Faces are found by YuNet; faces it misses (small, strongly turned, occluded) get no score, and a "
        "photo with no detected face returns a reason instead of a number.\n"
        "- Quality learned from a recognizer (SDD-FIQA) or from identity data inherits that data's demographic "
        "imbalance: public face datasets (LFW, CelebA, MS-Celeb-1M) over-represent light-skinned adults, "
        "so scores for under-represented groups (darker skin tones, children, older people) may be "
        "systematically lower or less reliable. Check per-group score distributions and error rates before "
        "using thresholds for decisions about people.\n"
        "- Scores are comparable only between images processed the same way (same detector, alignment template "
        "and crop size); they are not probabilities.\n"
        "- Not for inferring identity, age, gender, emotion or any other attribute, and not as the sole basis of "
        "automated decisions with legal or similar effects.\n"
        "- Models trained on few identities or with a reduced recipe (the project's offline demo runs) are "
        "demonstrations, not production models: read the evaluation above."
    )
    parts = [
        f"# {model_name}: {info['title']}",
        f"A {model_type.upper()} model packaged by hf-fiqa with its own code "
        "(`trust_remote_code=True`): it loads with transformers alone, without installing hf-fiqa.",
        "## Intended use", intended,
        "## How to score", how,
        "## Output", units + _bands_text(config),
        "## Evaluation", _results_table(results)
        + ("\n\nEDC pAUC: area under the error-versus-discard curve up to the discard limit (ISO/IEC 29794-1); "
           "lower is better." if task == "fiqa" else ""),
        "## Training data", data_text + " Labels: " + labels,
        "## Limitations and known biases", biases,
        "## How this model was made",
        (f"```bash\n{command}\n```" if command else "The producing command was not recorded.")
        + (f"\n\nBase model: `{base_model}`." if base_model else ""),
        "## Citation",
        "```bibtex\n" + "\n".join(_CITATIONS[k] for k in _citations_for(model_type, task)) + "\n```",
    ]
    return "\n\n".join(parts) + "\n"


def _citations_for(model_type: str, task: str) -> list[str]:
    keys = [k for k in ("maniqa", "musiq", "lightqnet") if k == model_type]
    if task == "fiqa" and model_type != "lightqnet":
        keys.append("sdd-fiqa")
    if task == "recognition":
        keys.append("magface")
    return keys or ["sdd-fiqa"]


def _how_to_score(task: str, repo: str) -> str:
    if task == "recognition":
        return (
            "```python\nfrom transformers import AutoModel, AutoImageProcessor\n"
            f"model = AutoModel.from_pretrained(\"{repo}\", trust_remote_code=True).eval()\n"
            f"processor = AutoImageProcessor.from_pretrained(\"{repo}\", trust_remote_code=True)\n"
            "out = model(**processor([\"aligned_face.png\"]))   # out.embeddings, out.norms (MagFace quality)\n```\n"
            "Inputs are faces aligned on the 5-point template (`hf_fiqa.faces.FaceCropper` or any ArcFace-style "
            "aligner). ONNX: `hf-fiqa export onnx MODEL OUT.onnx`.")
    return (
        "Every face in a photo (detect with YuNet, align on the 5-point template, score), no hf-fiqa needed:\n\n"
        "```python\nfrom transformers import pipeline\n"
        f"faces = pipeline(\"face-image-quality\", model=\"{repo}\", trust_remote_code=True)\n"
        "faces(\"group.jpg\")   # {'faces': [{'box', 'landmarks', 'detection_score', 'quality'}, ...], 'reason', 'error'}\n"
        f"bands = pipeline(\"image-classification\", model=\"{repo}\", trust_remote_code=True)\n"
        "bands(\"face_crop.png\")   # [{'label': 'good', 'score': 0.93}, {'label': 'acceptable', ...}, ...]\n```\n\n"
        "Use `face-image-quality` for photos (one score per detected face); use `image-classification` only on an "
        "image that already is one face crop (it scores the whole image as one crop, no detection). The YuNet "
        "detector weights come from `$HF_FIQA_DETECTOR_WEIGHTS` or the Hub (`opencv/face_detection_yunet`, "
        "cached). The model alone: `AutoModel.from_pretrained(repo, trust_remote_code=True)` with its "
        "`AutoImageProcessor`. ONNX: `hf-fiqa export onnx MODEL OUT.onnx`, then "
        "`hf_fiqa.load_scorer(OUT.onnx, backend=\"onnxruntime\")`.")


__all__ = ["TASKS", "eval_results", "infer_task", "write_model_card"]
