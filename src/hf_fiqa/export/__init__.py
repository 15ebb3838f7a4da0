"""Exports of saved hf-fiqa models to other runtimes: :mod:`hf_fiqa.export.onnx` (ONNX for onnxruntime).

``hf-fiqa export onnx MODEL_DIR OUT.onnx`` runs :func:`hf_fiqa.export.onnx.export_onnx`; load an export with
``hf_fiqa.load_scorer(path, backend="onnxruntime")``. This package file stays free of torch so that the
command's ``--help`` can show the default opset without loading the exporter.
"""

DEFAULT_OPSET = 18  # ONNX opset of every export: what torch's dynamo exporter targets by default

__all__ = ["DEFAULT_OPSET"]
