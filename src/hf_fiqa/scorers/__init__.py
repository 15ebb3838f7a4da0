"""Face-quality scorers: one protocol, one loader, every method behind it.

* :class:`QualityScorer`: aligned crops (any size) in, one quality per face out, higher = better;
* :func:`load_scorer`: a baseline name, or a model folder / Hub id (a quality model with its
  processor, or a recognizer whose embedding magnitude is the quality, as in MagFace);
* :class:`ModelQualityScorer`, :class:`MagFaceQualityScorer` and the weight-free baselines
  (:data:`BASELINES`) that every learned method must beat.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .baselines import (
    BASELINES,
    DetectorConfidenceScorer,
    FaceSizeScorer,
    InterEyeDistanceScorer,
    MissingDetectionError,
    RandomScorer,
    SharpnessScorer,
    make_baseline,
)
from .onnx import ONNX_FILENAMES
from .protocol import QualityScorer, crop_spec

__all__ = [
    "BACKENDS",
    "BASELINES",
    "DetectorConfidenceScorer",
    "FaceSizeScorer",
    "InterEyeDistanceScorer",
    "MagFaceQualityScorer",
    "MissingDetectionError",
    "ModelQualityScorer",
    "OnnxQualityScorer",
    "QualityScorer",
    "RandomScorer",
    "SharpnessScorer",
    "choose_backend",
    "crop_spec",
    "is_recognizer",
    "load_scorer",
    "make_baseline",
    "scorer_for_model",
]


def __getattr__(name: str):
    # The model scorers pull in torch; baselines and the protocol do not need it.
    if name == "ModelQualityScorer":
        from .model import ModelQualityScorer

        return ModelQualityScorer
    if name == "OnnxQualityScorer":
        from .onnx import OnnxQualityScorer

        return OnnxQualityScorer
    if name == "MagFaceQualityScorer":
        from .magface import MagFaceQualityScorer

        return MagFaceQualityScorer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def is_recognizer(config: Any) -> bool:
    """A face recognizer (its output is an embedding) rather than a quality model (a score)."""
    return hasattr(config, "embedding_size")


def scorer_for_model(model: Any, image_processor: Any, device: Any = None, batch_size: int = 16) -> QualityScorer:
    """The scorer a loaded model implies: embedding magnitude for a recognizer, else the model's score."""
    if image_processor is None:
        raise ValueError(f"{type(model).__name__} needs its image processor to score faces")
    if is_recognizer(getattr(model, "config", None)):
        from .magface import MagFaceQualityScorer

        return MagFaceQualityScorer(model, image_processor, device=device, batch_size=batch_size)
    from .model import ModelQualityScorer

    return ModelQualityScorer(model, image_processor, device=device, batch_size=batch_size)


BACKENDS = ("auto", "torch", "onnxruntime")


def choose_backend(name_or_path: str, device: Any = None) -> str:
    """What ``backend="auto"`` runs: onnxruntime on the CPU when an ``hf-fiqa export onnx`` export is at hand
    locally (an ``.onnx`` file, or a folder holding ``onnx/model.onnx`` or ``model.onnx``; every export is checked
    against torch within 1e-4 when written) and onnxruntime is installed, since it was measured faster there at
    equal scores (README, "At scale"); torch otherwise: on GPUs, for Hub ids (an export would be a second
    download), for folders without an export, and for folders whose weights or config are newer than their
    export (a stale export)."""
    import importlib.util

    import torch

    on_cpu = str(device).startswith("cpu") if device is not None else not torch.cuda.is_available()
    if not on_cpu or importlib.util.find_spec("onnxruntime") is None:
        return "torch"
    path = Path(name_or_path)
    if path.is_file() and path.suffix == ".onnx":
        return "onnxruntime"
    exports = [path / name for name in ONNX_FILENAMES if (path / name).is_file()] if path.is_dir() else []
    if not exports:
        return "torch"
    # An export older than the weights or the config (retrained, recalibrated since) would score with stale numbers.
    saved = [p.stat().st_mtime for p in (*path.glob("*.safetensors"), path / "config.json") if p.is_file()]
    return "onnxruntime" if exports[0].stat().st_mtime >= max(saved, default=0.0) else "torch"


def load_scorer(name_or_path: str, device: Any = None, batch_size: int = 16, backend: str = "auto") -> QualityScorer:
    """A scorer from a baseline name (see :data:`BASELINES`) or a model folder / Hub id.

    Models load with their own code and processor (``trust_remote_code=True``), so any saved
    hf-fiqa model works without knowing its family here. ``backend="onnxruntime"`` runs an
    ``hf-fiqa export onnx`` export instead (an ``.onnx`` file, or a folder / Hub id holding
    ``onnx/model.onnx`` or ``model.onnx``): see :class:`~hf_fiqa.scorers.onnx.OnnxQualityScorer`.
    ``backend="auto"`` (the default) picks one by :func:`choose_backend`.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if name_or_path in BASELINES:
        return make_baseline(name_or_path)
    if backend == "auto":
        backend = choose_backend(name_or_path, device)
    if backend == "onnxruntime":
        from .onnx import OnnxQualityScorer

        try:
            return OnnxQualityScorer(name_or_path, device=device, batch_size=batch_size)
        except ImportError as exc:
            raise ValueError(f"backend='onnxruntime' needs onnxruntime: pip install 'hf-fiqa[onnx]' ({exc})") from exc
        except FileNotFoundError as exc:
            raise ValueError(f"cannot load an ONNX scorer from {name_or_path!r}: {exc}") from exc
    from transformers import AutoImageProcessor, AutoModel

    from ..models import register_models

    register_models()  # AutoModel/AutoImageProcessor know every family, with or without auto_map

    try:
        model = AutoModel.from_pretrained(name_or_path, trust_remote_code=True)
        processor = AutoImageProcessor.from_pretrained(name_or_path, trust_remote_code=True)
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(
            f"cannot load a quality scorer from {name_or_path!r}: {exc} (expected a baseline name "
            f"{sorted(BASELINES)} or a saved model folder / Hub id with its image processor)") from exc
    return scorer_for_model(model, processor, device=device, batch_size=batch_size)
