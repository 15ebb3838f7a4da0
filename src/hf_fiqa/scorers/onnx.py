"""Quality from an ONNX export (``hf-fiqa export onnx``) run by onnxruntime: no torch model at scoring time.

The same numbers as :class:`~hf_fiqa.scorers.ModelQualityScorer` / :class:`~hf_fiqa.scorers.MagFaceQualityScorer`
(within 1e-4): the image processor makes the views, the graph gives ``score`` (quality models, then the config's
``quality_calibration`` when present) or ``norms`` (recognizers: MagFace quality), and view scores are averaged
per crop. Config and image processor come from the file's metadata, or from the model folder it sits in.

    scorer = hf_fiqa.load_scorer("models/maniqa/onnx/model.onnx", backend="onnxruntime")
    scorer = hf_fiqa.load_scorer("models/maniqa", backend="onnxruntime")   # finds onnx/model.onnx or model.onnx
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..faces.types import AlignedFace

ONNX_FILENAMES = ("onnx/model.onnx", "model.onnx")

# image_processor_type -> the hf_fiqa class that rebuilds it from the JSON stored in an export.
_PROCESSORS = {
    "MANIQAImageProcessor": ("hf_fiqa.models.maniqa", "MANIQAImageProcessor"),
    "MUSIQImageProcessor": ("hf_fiqa.models.musiq", "MUSIQImageProcessor"),
    "IResNetImageProcessor": ("hf_fiqa.models.iresnet", "IResNetImageProcessor"),
    "DlibResNetImageProcessor": ("hf_fiqa.models.dlib_resnet", "DlibResNetImageProcessor"),
}


def resolve_onnx_file(name_or_path: str | os.PathLike) -> Path:
    """An ``.onnx`` file, a folder holding ``onnx/model.onnx`` or ``model.onnx``, or a Hub id with one of them."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    if path.is_dir():
        for name in ONNX_FILENAMES:
            if (path / name).is_file():
                return path / name
        raise FileNotFoundError(f"no ONNX export in {path} (looked for {', '.join(ONNX_FILENAMES)}); "
                                f"make one with `hf-fiqa export onnx {path} {path / 'onnx' / 'model.onnx'}`")
    from huggingface_hub import hf_hub_download

    errors = []
    for name in ONNX_FILENAMES:
        try:
            return Path(hf_hub_download(str(name_or_path), name))
        except Exception as exc:  # missing file, offline, unknown repo
            errors.append(f"{name}: {type(exc).__name__}")
    raise FileNotFoundError(f"no ONNX export found for {name_or_path!r} ({'; '.join(errors)})")


def processor_from_json(text: str) -> Any:
    """Rebuild an hf-fiqa image processor from its ``to_json_string()``."""
    import importlib

    values = json.loads(text)
    kind = values.pop("image_processor_type", None)
    if kind not in _PROCESSORS:
        raise ValueError(f"unknown image processor {kind!r} in the ONNX metadata (known: {sorted(_PROCESSORS)})")
    module, name = _PROCESSORS[kind]
    values.pop("auto_map", None)
    return getattr(importlib.import_module(module), name)(**values)


def _crop_size(processor: Any, default: int) -> int:
    for name in ("crop_size", "image_size", "size"):  # MANIQA/MUSIQ, iResNet, dlib processors
        value = getattr(processor, name, None)
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            return int(value)
    return int(default)


class OnnxQualityScorer:
    """:class:`~hf_fiqa.scorers.QualityScorer` running an ONNX export with onnxruntime.

    Args:
        path: the ``.onnx`` file (or a folder / Hub id holding one, see :func:`resolve_onnx_file`).
        image_processor: the model's processor; default: the folder's ``preprocessor_config.json`` next to the
            export, else the processor stored in the file's metadata.
        device: ``"cuda"`` uses onnxruntime's CUDA provider when installed; CPU otherwise.
        batch_size: views per ``session.run``.
        providers: onnxruntime execution providers (overrides ``device``).
        threads: intra-op threads (onnxruntime's default: all cores).
    """

    def __init__(self, path: str | os.PathLike, image_processor: Any = None, device: Any = None, batch_size: int = 16,
                 providers: Sequence[str] | None = None, threads: int | None = None, name: str | None = None):
        import onnxruntime as ort

        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.path = resolve_onnx_file(path)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        if providers is None:
            available = ort.get_available_providers()
            want_cuda = device is not None and str(device).startswith("cuda")
            providers = (["CUDAExecutionProvider"] if want_cuda and "CUDAExecutionProvider" in available else []) \
                + ["CPUExecutionProvider"]
        self.session = ort.InferenceSession(str(self.path), options, providers=list(providers))
        meta = self.session.get_modelmeta().custom_metadata_map
        if "hf_fiqa.kind" not in meta:
            raise ValueError(f"{self.path} is not an hf-fiqa export (no hf_fiqa.* metadata); "
                             "make it with `hf-fiqa export onnx`")
        self.kind = meta["hf_fiqa.kind"]
        self.config = json.loads(meta.get("hf_fiqa.config", "{}"))
        self.image_processor = image_processor or self._find_processor(meta)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.batch_size = int(batch_size)
        self.name = name or f"{self.config.get('model_type', 'model')}-onnx"
        self.crop_size = _crop_size(self.image_processor, self.config.get("image_size", 112))
        template = self.config.get("alignment_template")
        model_size = float(self.config.get("image_size", self.crop_size))
        # Configs store templates in pixels of the model's input (as the torch scorers read them).
        scale = model_size if self.kind == "recognizer" else float(self.crop_size)
        self.crop_template = None if template is None else tuple((x / scale, y / scale) for x, y in template)
        self.calibration = self.config.get("quality_calibration") if self.kind == "quality" else None

    def _find_processor(self, meta: dict[str, str]) -> Any:
        for folder in (self.path.parent, self.path.parent.parent):
            if (folder / "preprocessor_config.json").is_file():
                from transformers import AutoImageProcessor

                from ..models import register_models

                register_models()  # AutoModel/AutoImageProcessor know every family, with or without auto_map

                return AutoImageProcessor.from_pretrained(str(folder), trust_remote_code=True)
        if "hf_fiqa.preprocessor" not in meta:
            raise ValueError(f"{self.path}: no image processor beside it and none in its metadata")
        return processor_from_json(meta["hf_fiqa.preprocessor"])

    def score_images(self, images: Sequence[Any], batch_size: int | None = None) -> np.ndarray:
        """One float64 quality per image (any size; the processor makes the views)."""
        if len(images) == 0:
            return np.zeros(0, dtype=np.float64)
        step = int(batch_size or self.batch_size)
        if step <= 0:
            raise ValueError(f"batch_size must be positive, got {step}")
        batch = self.image_processor(list(images), return_tensors="np")
        owners = np.asarray(batch["crop_to_image"]) if "crop_to_image" in batch else np.arange(len(images))
        feed_all = {}
        for name in self.input_names:
            value = np.asarray(batch[name])
            feed_all[name] = value.astype(np.float32) if np.issubdtype(value.dtype, np.floating) else value.astype(np.int64)
        output = "norms" if self.kind == "recognizer" else "score"
        scores = np.concatenate([
            self.session.run([output], {k: v[start:start + step] for k, v in feed_all.items()})[0]
            for start in range(0, len(owners), step)
        ]).astype(np.float64)
        if self.calibration is not None:  # the model's own calibration, applied outside the graph
            from ..quality_scale import calibrated_quality

            scores = calibrated_quality(scores, self.calibration)
        sums = np.bincount(owners, weights=scores, minlength=int(owners.max()) + 1)
        return sums / np.bincount(owners, minlength=int(owners.max()) + 1)

    def score(self, faces: Sequence[AlignedFace], batch_size: int | None = None) -> np.ndarray:
        return self.score_images([face.crop for face in faces], batch_size=batch_size)
