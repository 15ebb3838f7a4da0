"""Exports of saved hf-fiqa models to other runtimes (ONNX for onnxruntime).

``hf-fiqa export onnx MODEL_DIR OUT.onnx`` (see :mod:`hf_fiqa.export.commands`) and
:func:`hf_fiqa.export.onnx.export_onnx`; run an export with
``hf_fiqa.load_scorer(path, backend="onnxruntime")``. The exporter (torch) loads on first use.
"""

from typing import Any

DEFAULT_OPSET = 18  # ONNX opset of every export: what torch's dynamo exporter targets by default

__all__ = ["DEFAULT_OPSET", "OnnxExportReport", "export_onnx"]


def __getattr__(name: str) -> Any:
    if name in ("OnnxExportReport", "export_onnx"):
        from . import onnx

        return getattr(onnx, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
