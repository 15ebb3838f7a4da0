"""Saved quality models and recognizers -> ONNX, checked against torch with onnxruntime.

What is exported (one graph per family, batch axis dynamic):

===============================  ====================================================  ==========================
family                           inputs                                                outputs
===============================  ====================================================  ==========================
MANIQA                           ``pixel_values`` (B, 3, S, S) float32                 ``score`` (B,)
MUSIQ                            ``pixel_values`` (B, L, 3, P, P) float32,             ``score`` (B,)
                                 ``spatial_positions``, ``scale_ids``,
                                 ``attention_mask`` (B, L) int64; L dynamic too
iResNet, MobileFaceNet, dlib      ``pixel_values`` (B, 3, S, S) float32                 ``embeddings`` (B, E),
                                                                                       ``norms`` (B,)
===============================  ====================================================  ==========================

``score`` is what ``model(...).score`` returns (training-label units when ``config.label_range`` is set; the
first output when there are several); a calibrated 0-100 ``quality`` is applied by the onnxruntime scorer from
the config carried in the file, so the graph stays a plain network. Pixels come from the model's own image
processor, whose JSON is stored in the file too.

Exporter: ``torch.onnx.export(..., dynamo=True)`` (torch.export + onnxscript), opset :data:`DEFAULT_OPSET`
by default (18: the opset the dynamo exporter targets natively; attention is lowered to MatMul/Softmax, so any
onnxruntime >= 1.14 runs it; ``--opset`` picks another, which onnxscript converts to). Weights are stored
inside the ``.onnx`` file (MANIQA-B/8 is about 0.4 GB, under protobuf's 2 GB limit).

Metadata (``onnx.ModelProto.metadata_props``): ``hf_fiqa.kind`` (``quality`` or ``recognizer``),
``hf_fiqa.model_type``, ``hf_fiqa.config`` (config JSON), ``hf_fiqa.preprocessor`` (image-processor JSON),
``hf_fiqa.opset``, ``hf_fiqa.max_abs_diff`` (the check below).

After exporting, the graph is run with onnxruntime on a fresh input of another batch size than the one traced
and compared with torch: the export fails when any output differs by more than ``atol + rtol * |torch|``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from . import DEFAULT_OPSET

META_PREFIX = "hf_fiqa."


class OnnxExportError(RuntimeError):
    """The export failed, or onnxruntime disagrees with torch beyond the tolerance."""


@dataclass
class OnnxExportReport:
    path: Path
    kind: str
    model_type: str
    opset: int
    inputs: list[str]
    outputs: list[str]
    max_abs_diff: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "kind": self.kind, "model_type": self.model_type, "opset": self.opset,
                "inputs": self.inputs, "outputs": self.outputs, "max_abs_diff": self.max_abs_diff}


class _QualityGraph(nn.Module):
    """MANIQA: pixel_values -> score (B,)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        score = self.model(pixel_values=pixel_values, return_dict=True).score
        return score if score.ndim == 1 else score[:, 0]


class _MUSIQGraph(nn.Module):
    """MUSIQ: patch sequences -> score (B,)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, pixel_values, spatial_positions, scale_ids, attention_mask):
        return self.model(pixel_values=pixel_values, spatial_positions=spatial_positions, scale_ids=scale_ids,
                          attention_mask=attention_mask, return_dict=True).score


class _RecognizerGraph(nn.Module):
    """Recognizers: pixel_values -> (embeddings (B, E), norms (B,))."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor):
        out = self.model(pixel_values=pixel_values, return_dict=True)
        return out.embeddings, torch.linalg.vector_norm(out.embeddings, dim=1)


def _example_images(count: int, size: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(count)]


def _graph_for(model: nn.Module) -> tuple[nn.Module, str, list[str], list[str]]:
    model_type = getattr(model.config, "model_type", "")
    if hasattr(model.config, "embedding_size"):
        return _RecognizerGraph(model), "recognizer", ["pixel_values"], ["embeddings", "norms"]
    if model_type == "musiq":
        return _MUSIQGraph(model), "quality", ["pixel_values", "spatial_positions", "scale_ids", "attention_mask"], ["score"]
    if model_type == "maniqa" or hasattr(model.config, "image_size"):
        return _QualityGraph(model), "quality", ["pixel_values"], ["score"]
    raise OnnxExportError(f"cannot export a {type(model).__name__} ({model_type!r}): not a quality model or recognizer")


def _inputs(processor: Any, names: list[str], images: list[np.ndarray]) -> dict[str, np.ndarray]:
    batch = processor(images, return_tensors="np")
    missing = [n for n in names if n not in batch]
    if missing:
        raise OnnxExportError(f"the image processor does not return {missing} (got {sorted(batch.keys())})")
    out = {}
    for name in names:
        value = np.asarray(batch[name])
        out[name] = value.astype(np.float32) if np.issubdtype(value.dtype, np.floating) else value.astype(np.int64)
    return out


def _dynamic_shapes(names: list[str], kind: str, model_type: str) -> dict[str, dict[int, Any]]:
    batch = torch.export.Dim("batch", min=1, max=65536)
    if model_type == "musiq":
        length = torch.export.Dim("sequence", min=2, max=1 << 20)
        return {name: {0: batch, 1: length} for name in names}
    return {name: {0: batch} for name in names}


def processor_crop_size(processor: Any, default: int) -> int:
    """The side of the square crops a processor is made for (``crop_size``, ``image_size`` or ``size``)."""
    for name in ("crop_size", "image_size", "size"):
        value = getattr(processor, name, None)
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            return int(value)
    return int(default)


def load_model_and_processor(model_dir: str | os.PathLike) -> tuple[nn.Module, Any]:
    """A saved model (folder or Hub id) and its image processor, loaded with their own code."""
    from transformers import AutoImageProcessor, AutoModel

    from ..models import register_models

    register_models()  # AutoModel/AutoImageProcessor know every family, with or without auto_map

    try:
        model = AutoModel.from_pretrained(str(model_dir), trust_remote_code=True)
        processor = AutoImageProcessor.from_pretrained(str(model_dir), trust_remote_code=True)
    except (OSError, ValueError, KeyError) as exc:
        raise OnnxExportError(f"cannot load a model with its image processor from {model_dir}: {exc}") from exc
    return model.float().eval(), processor


def export_onnx(model_dir: str | os.PathLike | nn.Module, output: str | os.PathLike, *, processor: Any = None,
                opset: int = DEFAULT_OPSET, check: bool = True, atol: float = 1e-4, rtol: float = 1e-4,
                example_batch: int = 2) -> OnnxExportReport:
    """Export a saved model (folder, Hub id, or a loaded model with ``processor``) to ``output`` (.onnx).

    Raises :class:`OnnxExportError` when the model cannot be exported or onnxruntime's outputs differ from
    torch's by more than ``atol + rtol * |torch|`` on a check input of another batch size.
    """
    import onnx

    if isinstance(model_dir, nn.Module):
        if processor is None:
            raise OnnxExportError("export_onnx(model, ...) needs the model's image processor")
        model = model_dir.float().eval()
    else:
        model, loaded = load_model_and_processor(model_dir)
        processor = processor or loaded
    graph, kind, input_names, output_names = _graph_for(model)
    graph.eval()
    model_type = str(getattr(model.config, "model_type", type(model).__name__))
    size = processor_crop_size(processor, getattr(model.config, "image_size", 112))
    if example_batch < 2:
        raise ValueError("example_batch must be >= 2 (a traced batch of 1 would be specialised)")
    example = _inputs(processor, input_names, _example_images(example_batch, size, seed=0))
    args = tuple(torch.from_numpy(example[name]) for name in input_names)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        with torch.no_grad():
            program = torch.onnx.export(
                graph, args, dynamo=True, input_names=input_names, output_names=output_names,
                dynamic_shapes=_dynamic_shapes(input_names, kind, model_type), opset_version=opset,
                external_data=False, optimize=True,
            )
    except Exception as exc:  # torch.export raises many types; name the model
        raise OnnxExportError(f"exporting {model_type} to ONNX failed: {type(exc).__name__}: {exc}") from exc
    proto = program.model_proto
    metadata = {
        "kind": kind, "model_type": model_type, "opset": str(opset),
        "config": model.config.to_json_string(use_diff=False),
        "preprocessor": processor.to_json_string(),
    }
    report = OnnxExportReport(output, kind, model_type, opset, input_names, output_names)
    if check:
        report.max_abs_diff = _check(graph, proto, processor, input_names, output_names, size, atol, rtol,
                                     batch=example_batch + 1)
        metadata["max_abs_diff"] = json.dumps(report.max_abs_diff)
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = META_PREFIX + key, value
    proto.producer_name = "hf-fiqa"
    onnx.save_model(proto, str(output))
    return report


def _check(graph: nn.Module, proto: Any, processor: Any, input_names: list[str], output_names: list[str],
           size: int, atol: float, rtol: float, batch: int) -> dict[str, float]:
    import onnxruntime as ort

    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    feed = _inputs(processor, input_names, _example_images(batch, size, seed=1))
    got = session.run(output_names, feed)
    with torch.no_grad():
        want = graph(*(torch.from_numpy(feed[name]) for name in input_names))
    want = want if isinstance(want, tuple) else (want,)
    diffs = {}
    for name, g, w in zip(output_names, got, want):
        w = w.float().numpy()
        if g.shape != w.shape:
            raise OnnxExportError(f"ONNX output {name!r} has shape {g.shape}, torch {w.shape}")
        diff = np.abs(g.astype(np.float64) - w)
        diffs[name] = float(diff.max()) if diff.size else 0.0
        if (diff > atol + rtol * np.abs(w)).any():
            raise OnnxExportError(f"onnxruntime and torch disagree on {name!r}: max |diff| {diffs[name]:.3g} "
                                  f"(tolerance {atol:g} + {rtol:g} * |torch|)")
    return diffs


def read_metadata(path_or_proto: Any) -> dict[str, str]:
    """The ``hf_fiqa.*`` metadata of an exported file (keys without the prefix)."""
    import onnx

    proto = path_or_proto if hasattr(path_or_proto, "metadata_props") else onnx.load(str(path_or_proto), load_external_data=False)
    return {p.key[len(META_PREFIX):]: p.value for p in proto.metadata_props if p.key.startswith(META_PREFIX)}
