"""The pipelines a saved hf-fiqa quality model ships beside its weights (``config.custom_pipelines``).

With only transformers, torch, timm, opencv-python-headless, Pillow and numpy installed (no hf-fiqa)::

    from transformers import pipeline
    faces = pipeline("face-image-quality", model="org/maniqa-sdd-fiqa", trust_remote_code=True)
    faces("group.jpg")     # every face: detect (YuNet) -> align (5-point similarity) -> score, best first
    bands = pipeline("image-classification", model="org/maniqa-sdd-fiqa", trust_remote_code=True)
    bands("face.png")      # the whole image as ONE face crop -> [{"label": "good", "score": ...}, ...]

``face-image-quality`` is for photos: one record per photo, one score per detected face (the format of
``hf_fiqa.pipelines.FaceQualityPipeline``). ``image-classification`` is for images that already are a single
face crop (aligned, or at least tight): it does no detection, and answers in transformers' standard
``[{label, score}]`` form with the quality bands of ``config.quality_bands`` (see :class:`QualityBandsPipeline`).

When hf-fiqa is installed, ``FaceQualityPipeline`` here *is* the package's class, so both routes give the same
records. Without it, :class:`StandaloneFaceQualityPipeline` does the same steps with the same numbers (a test
compares them on real photos): the package's YuNet detector settings (threshold 0.6; fallback to 0.3 and then
to a 2x enlarged photo; detection at a working size of 320-1280 px on the longer side) and its least-squares
5-point similarity alignment (area pre-filter when shrinking, black border). Detector weights:
``$HF_FIQA_DETECTOR_WEIGHTS`` (an ONNX path), else ``hf_hub_download("opencv/face_detection_yunet",
"face_detection_yunet_2023mar.onnx")`` (cached; works offline once cached), else an error saying how to get them.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import cv2
import numpy as np
import torch
from transformers import Pipeline

try:  # inside the hf_fiqa package
    from hf_fiqa.io import ImageReadError, describe, load_image
    from hf_fiqa.quality_scale import DEFAULT_QUALITY_BANDS, band_of, band_scores, calibrated_quality, quality_0_100
except ImportError:  # as Hub remote code: the packaging step ships both modules next to this file
    from .fiqa_io import ImageReadError, describe, load_image
    from .fiqa_quality_scale import (DEFAULT_QUALITY_BANDS, band_of, band_scores, calibrated_quality,
                                     quality_0_100)

WEIGHTS_ENV = "HF_FIQA_DETECTOR_WEIGHTS"
YUNET_REPO_ID = "opencv/face_detection_yunet"
YUNET_FILENAME = "face_detection_yunet_2023mar.onnx"
NO_FACE = "no face detected"
# The ArcFace 5-point template of a 112x112 crop (eyes, nose tip, mouth corners; image left first).
ARCFACE_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655],
                        [70.7299, 92.2041]], dtype=np.float64)


def _run_model(model: Any, processor: Any, images: Sequence[Any], batch_size: int = 16) -> np.ndarray:
    """Per-image model score (the processor's views averaged), ``quality`` when the model reports it."""
    batch = processor(list(images), return_tensors="pt")
    owners = batch["crop_to_image"]
    inputs = {k: v for k, v in batch.items() if k != "crop_to_image"}
    param = next(model.parameters())
    scores = []
    with torch.inference_mode():
        for start in range(0, len(owners), batch_size):
            chunk = {k: v[start:start + batch_size].to(param.device, param.dtype if v.is_floating_point() else None)
                     for k, v in inputs.items()}
            out = model(**chunk)
            value = out.score if getattr(out, "quality", None) is None else out.quality
            scores.append((value if value.ndim == 1 else value[:, 0]).float().cpu())
    return processor.aggregate_scores(torch.cat(scores), owners).double().numpy()


class QualityBandsPipeline(Pipeline):
    """``image-classification`` on a quality model: the image is ONE face crop; out come quality bands.

    The 0-100 quality is the calibrated ``quality`` when ``config.quality_calibration`` exists, otherwise the
    score min-max scaled over ``config.label_range`` (see :func:`quality_0_100`). Bands and their thresholds
    are ``config.quality_bands`` (default: poor < 40 <= acceptable < 70 <= good), and ``config.id2label`` lists
    the same labels. ``top_k`` limits the labels returned (default all); ``return_quality=True`` adds the
    0-100 ``quality`` to each entry.
    """

    _load_image_processor = True
    _load_tokenizer = False
    _load_feature_extractor = False
    _load_processor = False

    def _sanitize_parameters(self, top_k: int | None = None, return_quality: bool | None = None, **kwargs: Any):
        post = {}
        if top_k is not None:
            post["top_k"] = int(top_k)
        if return_quality is not None:
            post["return_quality"] = bool(return_quality)
        return {}, {}, post

    def preprocess(self, image: Any, **kwargs: Any) -> Any:
        return load_image(image)

    def _forward(self, image: Any, **kwargs: Any) -> dict:
        return {"score": float(_run_model(self.model, self.image_processor, [image])[0])}

    def postprocess(self, output: dict, top_k: int | None = None, return_quality: bool = False) -> list[dict]:
        config = self.model.config
        calibrated = getattr(config, "quality_calibration", None) is not None
        # _run_model already returned the calibrated quality when the model reports one.
        quality = float(output["score"]) if calibrated else float(quality_0_100(output["score"], config))
        entries = band_scores(quality, getattr(config, "quality_bands", None))
        if return_quality:
            entries = [{**e, "quality": quality} for e in entries]
        return entries[:top_k] if top_k else entries


# -- the standalone face pipeline -----------------------------------------------------------------------------
def resolve_detector_weights(path: str | os.PathLike | None = None) -> str:
    """YuNet ONNX weights: ``path``, ``$HF_FIQA_DETECTOR_WEIGHTS``, or the Hub (cached); else a clear error."""
    for given, what in ((path, "the detector_weights argument"), (os.environ.get(WEIGHTS_ENV), f"${WEIGHTS_ENV}")):
        if given:
            if not os.path.isfile(given):
                raise FileNotFoundError(f"YuNet weights not found: {what} is {str(given)!r}, which is not a file")
            return str(given)
    try:
        from huggingface_hub import hf_hub_download

        return hf_hub_download(YUNET_REPO_ID, YUNET_FILENAME)
    except Exception as exc:  # offline with an empty cache, no network, hub errors
        raise FileNotFoundError(
            f"YuNet face-detector weights not found ({type(exc).__name__}: {exc}). Provide them by one of: "
            f"pipeline(..., detector_weights='face_detection_yunet_2023mar.onnx'); export {WEIGHTS_ENV}=/path/to/it; "
            f"or download once with network access: huggingface_hub.hf_hub_download('{YUNET_REPO_ID}', "
            f"'{YUNET_FILENAME}') (then cached, also for HF_HUB_OFFLINE=1).") from exc


class YuNet:
    """``cv2.FaceDetectorYN`` with hf-fiqa's detection settings; ``detect(rgb) -> (N, 15)`` rows
    (x1, y1, x2, y2, 5 landmarks, score), best first, boxes clipped to the photo."""

    def __init__(self, weights: str | None = None, score_threshold: float = 0.6, fallback_threshold: float = 0.3,
                 min_side: int = 320, max_side: int = 1280, fallback_min_size: float = 32.0):
        self.weights = resolve_detector_weights(weights)
        self.score_threshold, self.fallback_threshold = score_threshold, fallback_threshold
        self.min_side, self.max_side, self.fallback_min_size = min_side, max_side, fallback_min_size
        self.model = cv2.FaceDetectorYN.create(self.weights, "", (320, 320), fallback_threshold, 0.3, 5000)

    def _rows(self, rgb: np.ndarray, scale: float) -> np.ndarray:
        h, w = rgb.shape[:2]
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        work = rgb if (nw, nh) == (w, h) else cv2.resize(
            rgb, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        self.model.setInputSize((nw, nh))
        self.model.setScoreThreshold(self.fallback_threshold)
        _, found = self.model.detect(cv2.cvtColor(work, cv2.COLOR_RGB2BGR))
        rows = np.zeros((0, 15)) if found is None else found[:, :15].astype(np.float64)
        rows[:, 2] += rows[:, 0]
        rows[:, 3] += rows[:, 1]
        sx, sy = nw / w, nh / h
        if (nw, nh) == (w, h):
            return rows
        rows[:, 0:14:2] = (rows[:, 0:14:2] + 0.5) / sx - 0.5  # cv2.resize aligns pixel centres
        rows[:, 1:14:2] = (rows[:, 1:14:2] + 0.5) / sy - 0.5
        return rows

    def detect(self, rgb: np.ndarray) -> np.ndarray:
        h, w = rgb.shape[:2]
        longest = max(h, w)
        scale = self.max_side / longest if longest > self.max_side else (
            self.min_side / longest if longest < self.min_side else 1.0)
        rows = self._rows(rgb, scale)
        kept = rows[rows[:, 14] >= self.score_threshold]
        if len(kept) == 0:  # fallback: lower threshold (not specks), then the photo enlarged 2x
            for candidate in (rows, None):
                candidate = self._rows(rgb, 2.0 * scale) if candidate is None else candidate
                side = np.minimum(candidate[:, 2] - candidate[:, 0], candidate[:, 3] - candidate[:, 1]) * scale
                kept = candidate[(candidate[:, 14] >= self.fallback_threshold) & (side >= self.fallback_min_size)]
                if len(kept):
                    break
        kept = kept[np.argsort(-kept[:, 14], kind="stable")]
        kept[:, [0, 2]] = np.clip(kept[:, [0, 2]], 0, w)
        kept[:, [1, 3]] = np.clip(kept[:, [1, 3]], 0, h)
        kept[:, 14] = np.clip(kept[:, 14], 0.0, 1.0)
        box = kept[:, :4].astype(np.float32)
        return kept[(box[:, 2] - box[:, 0] > 0) & (box[:, 3] - box[:, 1] > 0)]


def align(rgb: np.ndarray, landmarks: np.ndarray, size: int, template: np.ndarray | None = None) -> np.ndarray:
    """Least-squares similarity of the 5 points (or, for a 3-point template, the eye centres and the mouth centre)
    onto the template at ``size`` px, warped (black border)."""
    src = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    dst = (ARCFACE_112 / 112.0 if template is None else np.asarray(template, dtype=np.float64)) * float(size)
    if len(dst) == 3:
        src = np.stack([src[0], src[1], src[3:5].mean(0)])
    n = len(src)
    rows = np.zeros((2 * n, 4))
    rows[0::2] = np.column_stack([src[:, 0], -src[:, 1], np.ones(n), np.zeros(n)])
    rows[1::2] = np.column_stack([src[:, 1], src[:, 0], np.zeros(n), np.ones(n)])
    (a, b, tx, ty), *_ = np.linalg.lstsq(rows, dst.reshape(-1), rcond=None)
    matrix = np.array([[a, -b, tx], [b, a, ty]])
    scale = float(np.sqrt(abs(a * a + b * b)))
    if scale < 0.75:  # shrink the face region with an area filter first: bilinear warping alone aliases
        h, w = rgb.shape[:2]
        inv = cv2.invertAffineTransform(matrix)
        corners = np.array([[0, 0], [size, 0], [0, size], [size, size]], dtype=np.float64) @ inv[:, :2].T + inv[:, 2]
        margin = int(np.ceil(2.0 / scale)) + 2
        x0, y0 = max(0, int(np.floor(corners[:, 0].min())) - margin), max(0, int(np.floor(corners[:, 1].min())) - margin)
        x1, y1 = min(w, int(np.ceil(corners[:, 0].max())) + margin), min(h, int(np.ceil(corners[:, 1].max())) + margin)
        if x1 - x0 >= 2 and y1 - y0 >= 2:
            nw, nh = max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale))
            small = cv2.resize(rgb[y0:y1, x0:x1], (nw, nh), interpolation=cv2.INTER_AREA)
            kx, ky = nw / (x1 - x0), nh / (y1 - y0)
            to_small = np.array([[kx, 0.0, (0.5 - x0) * kx - 0.5], [0.0, ky, (0.5 - y0) * ky - 0.5], [0, 0, 1]])
            matrix = (np.vstack([matrix, [0, 0, 1]]) @ np.linalg.inv(to_small))[:2]
            rgb = small
    return cv2.warpAffine(rgb, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=(0, 0, 0))


class StandaloneFaceQualityPipeline(Pipeline):
    """``face-image-quality`` without hf-fiqa: photo(s) -> one record each (see the module docstring).

    Call options: ``largest_face_only``, ``min_face_size`` (px, shorter box side), ``aligned`` (inputs already
    are aligned crops: one quality each, no detection), ``batch_size``. Constructor: ``detector_weights``.
    """

    _load_image_processor = True
    _load_tokenizer = False
    _load_feature_extractor = False
    _load_processor = False

    def __init__(self, *args: Any, detector_weights: str | None = None, components: bool = False,
                 face_mesh: Any = None, acceptance: Any = None, **kwargs: Any):
        if components or face_mesh is not None or acceptance is not None:
            raise ValueError("quality components (components=, face_mesh=, acceptance=) need the hf-fiqa package "
                             "(pip install hf-fiqa); this model's own pipeline code scores faces without it")
        super().__init__(*args, **kwargs)
        self.detector_weights = detector_weights
        self._detector = None
        config = self.model.config
        self.crop_size = int(getattr(self.image_processor, "crop_size", getattr(config, "image_size", 224)))
        template = getattr(config, "alignment_template", None)  # stored in pixels of the model's input
        self.template = None if template is None else np.asarray(template, dtype=np.float64) / self.crop_size

    @property
    def detector(self) -> YuNet:
        if self._detector is None:
            self._detector = YuNet(self.detector_weights)
        return self._detector

    def _sanitize_parameters(self, largest_face_only=None, min_face_size=None, aligned=None, batch_size=None, **kwargs):
        pre = {k: v for k, v in (("largest_face_only", largest_face_only), ("min_face_size", min_face_size),
                                 ("aligned", aligned), ("batch_size", batch_size)) if v is not None}
        return pre, {}, {}

    def __call__(self, inputs: Any, **kwargs: Any):
        options = {**self._preprocess_params, **self._sanitize_parameters(**kwargs)[0]}
        single = not isinstance(inputs, (list, tuple))
        records = [self._one(item, options) for item in ([inputs] if single else list(inputs))]
        return records[0] if single else records

    def _one(self, item: Any, options: dict) -> dict:
        record = {"input": describe(item), "faces": [], "reason": None, "error": None}
        try:
            rgb = np.asarray(load_image(item))
        except ImageReadError as exc:
            record["error"] = str(exc)
            return record
        batch_size = int(options.get("batch_size") or 16)
        if options.get("aligned", False):
            return {"input": record["input"], "quality": float(_run_model(self.model, self.image_processor, [rgb], batch_size)[0]),
                    "error": None}
        rows = self.detector.detect(rgb)
        min_size = float(options.get("min_face_size", 0.0))
        if len(rows) == 0:
            record["reason"] = NO_FACE
            return record
        box = rows[:, :4].astype(np.float32)  # sizes as hf-fiqa measures them (float32 boxes)
        kept = rows[np.minimum(box[:, 2] - box[:, 0], box[:, 3] - box[:, 1]) >= min_size]
        if len(kept) == 0:
            record["reason"] = f"no face of at least {min_size:g} px ({len(rows)} smaller found)"
            return record
        if options.get("largest_face_only", False):
            kept = kept[[int(np.argmax((kept[:, 2] - kept[:, 0]) * (kept[:, 3] - kept[:, 1])))]]
        crops = [align(rgb, row[4:14].astype(np.float32), self.crop_size, self.template) for row in kept]
        qualities = _run_model(self.model, self.image_processor, crops, batch_size)
        for index, (row, quality) in enumerate(zip(kept, qualities)):
            record["faces"].append({
                "face_index": index, "box": [round(float(v), 2) for v in row[:4].astype(np.float32)],
                "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in row[4:14].reshape(5, 2).astype(np.float32)],
                "detection_score": round(float(row[14]), 4), "quality": float(quality)})
        record["faces"].sort(key=lambda f: -f["quality"])
        return record

    # The Pipeline contract (``__call__`` above handles lists itself).
    def preprocess(self, item: Any, **kwargs: Any) -> Any:
        return item

    def _forward(self, item: Any, **kwargs: Any) -> Any:
        return self._one(item, kwargs)

    def postprocess(self, record: Any, **kwargs: Any) -> Any:
        return record


try:  # with hf-fiqa installed, the package's pipeline (same records; shares FaceCropper and the scorers)
    from hf_fiqa.pipelines.face_quality import FaceQualityPipeline
except ImportError:
    FaceQualityPipeline = StandaloneFaceQualityPipeline

__all__ = ["DEFAULT_QUALITY_BANDS", "FaceQualityPipeline", "calibrated_quality", "QualityBandsPipeline", "StandaloneFaceQualityPipeline", "YuNet",
           "align", "band_of", "band_scores", "quality_0_100", "resolve_detector_weights"]
