"""``hf-fiqa export onnx MODEL_DIR OUT.onnx``: a saved quality model or recognizer as an ONNX graph."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    export = subparsers.add_parser("export", help="export a saved model to another runtime (ONNX)")
    formats = export.add_subparsers(dest="format", required=True)
    onnx = formats.add_parser(
        "onnx", help="MANIQA / MUSIQ / iResNet / MobileFaceNet / dlib ResNet -> ONNX (dynamic batch), checked "
                     "against torch with onnxruntime",
        description="Export MODEL_DIR (a save_pretrained folder or Hub id) to OUT.onnx. The batch axis is "
                    "dynamic (and MUSIQ's sequence axis); config and image processor travel in the file's "
                    "metadata, so `hf_fiqa.load_scorer(OUT.onnx, backend='onnxruntime')` runs it. Save it as "
                    "MODEL_DIR/onnx/model.onnx to load it by folder.")
    onnx.add_argument("model", help="saved model folder or Hub id")
    onnx.add_argument("output", help="the .onnx file to write")
    from ..export import DEFAULT_OPSET

    onnx.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    onnx.add_argument("--atol", type=float, default=1e-4, help="allowed |onnxruntime - torch| (plus rtol*|torch|)")
    onnx.add_argument("--rtol", type=float, default=1e-4)
    onnx.add_argument("--no-check", action="store_true", help="skip the onnxruntime-vs-torch comparison")
    onnx.set_defaults(func=_run_onnx, loads_models=True)


def _run_onnx(args: argparse.Namespace) -> int:
    from ..export.onnx import OnnxExportError, export_onnx

    try:
        with contextlib.redirect_stdout(sys.stderr):  # the exporter prints progress; stdout carries the JSON
                report = export_onnx(args.model, args.output, opset=args.opset, check=not args.no_check,
                                 atol=args.atol, rtol=args.rtol)
    except (OnnxExportError, ValueError, OSError) as exc:
        print(f"hf-fiqa export onnx: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report.to_dict()))
    return 0
