"""Exports of saved hf-fiqa models to other runtimes (ONNX for onnxruntime).

``hf-fiqa export onnx MODEL_DIR OUT.onnx`` (see :mod:`hf_fiqa.export.commands`) and
:func:`hf_fiqa.export.onnx.export_onnx`; run an export with
``hf_fiqa.load_scorer(path, backend="onnxruntime")``.
"""

from .onnx import DEFAULT_OPSET, OnnxExportReport, export_onnx

__all__ = ["DEFAULT_OPSET", "OnnxExportReport", "export_onnx"]
