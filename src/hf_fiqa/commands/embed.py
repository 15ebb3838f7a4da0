"""``hf-fiqa embed``: embed every face of an image list with a recognizer (resumable, sharded).

Heavy imports (torch, transformers, OpenCV) happen inside the handler so ``hf-fiqa --help``
stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .options import (
    OutputError,
    UsageError,
    add_device_args,
    add_progress_args,
    add_workers_arg,
    check_output_dir,
    fail,
    positive_int,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``hf-fiqa embed``."""
    p = subparsers.add_parser(
        "embed",
        help="embed face images with a recognition model (resumable, sharded)",
        description=(
            "Embed every image of INPUT with a face-recognition model. INPUT is a folder of images "
            "(recursive), an identity folder root/<identity>/<image>, or a CSV with 'path' and optional "
            "'identity' columns. Writes OUTPUT/embeddings.npy (float32, N x D; NaN rows where no face) and "
            "OUTPUT/rows.csv (row, path, identity, ok, error, n_faces, det_score, norm), or one "
            "OUTPUT/embeddings.parquet. An interrupted run continues from its last complete shard when "
            "started again with the same arguments."
        ),
    )
    p.add_argument("input", help="image folder, identity folder or CSV file")
    p.add_argument("--model", required=True, help="recognition model folder (save_pretrained / hf-fiqa convert) or Hub id")
    p.add_argument("--output", "-o", required=True, type=Path, help="output folder")
    p.add_argument("--aligned", action="store_true",
                   help="inputs are already aligned face crops (the model's processor resizes them); otherwise the "
                        "largest face is detected with YuNet and aligned to the model's template")
    p.add_argument("--layout", choices=("auto", "images", "identities", "csv"), default="auto",
                   help="how INPUT is organised (default: guess)")
    p.add_argument("--format", dest="fmt", choices=("npy", "parquet"), default="npy", help="output format (default npy)")
    p.add_argument("--batch-size", type=positive_int, default=64, help="faces per forward pass (default 64)")
    p.add_argument("--shard-size", type=positive_int, default=1024, help="rows per resumable shard (default 1024)")
    add_device_args(p)
    p.add_argument("--flip", action="store_true", help="add the embedding of the mirrored face (insightface evaluation protocol)")
    add_workers_arg(p)
    p.add_argument("--detector-weights", default=None, help="YuNet ONNX file (default: $HF_FIQA_DETECTOR_WEIGHTS or the HF Hub cache)")
    p.add_argument("--overwrite", action="store_true", help="discard earlier results or an unfinished run in OUTPUT")
    add_progress_args(p)
    p.set_defaults(func=run_embed_command, loads_models=True)


def run_embed_command(args: argparse.Namespace) -> int:
    from ..faces.types import CropSpec
    from .options import resolve_device, torch_dtype
    from ..embedding.embedder import RecognitionEmbedder
    from ..embedding.inputs import list_inputs
    from ..embedding.job import run_embedding
    from ..embedding.prepare import DetectAndAlign, ReadAlignedCrop
    from ..sharding import OutputConflictError, process_group

    for name in ("batch_size", "shard_size"):
        if getattr(args, name) <= 0:
            return fail("embed", f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if args.workers < 0:
        return fail("embed", f"--workers must be 0 or more, got {args.workers}")
    try:
        check_output_dir(args.output, inputs=[args.input], create=False)
        items, layout = list_inputs(args.input, args.layout, exclude=(args.output,))
        if not items:
            raise UsageError(f"no images found in {args.input}")
        group = process_group()
        device = resolve_device(args.device, group)
        dtype = torch_dtype(getattr(args, "dtype", None))
    except (ValueError, OutputError) as exc:
        return fail("embed", exc)
    try:
        embedder = RecognitionEmbedder(args.model, device=device, batch_size=args.batch_size, flip=args.flip)
        if dtype is not None:
            embedder.model.to(dtype)
            embedder.dtype = dtype
    except (ValueError, TypeError, OSError) as exc:
        return fail("embed", exc)
    n_skipped = sum(bool(item.skip) for item in items)
    settings: dict[str, Any] = {
        "model": str(Path(args.model).resolve()) if Path(args.model).exists() else str(args.model),
        # The architecture and input convention, without bookkeeping such as _name_or_path.
        "model_config": json.dumps(
            {k: v for k, v in embedder.model.config.to_dict().items() if not k.startswith("_") and k != "transformers_version"},
            sort_keys=True, default=str,
        ),
        "aligned": bool(args.aligned),
        "flip": bool(args.flip),
        "layout": layout,
    }
    if dtype is not None:
        settings["dtype"] = str(dtype).replace("torch.", "")
    if args.aligned:
        prepare = ReadAlignedCrop()
    else:
        from ..faces import FaceCropper, YuNetDetector

        try:
            detector = YuNetDetector(args.detector_weights)
        except Exception as exc:  # a missing file, or OpenCV's cv2.error for a bad one
            return fail("embed", f"cannot load the face detector: {exc}")
        settings["detector"] = repr(detector)
        spec = CropSpec(embedder.crop_size, embedder.crop_template)
        if spec.template is not None:
            settings["template"] = spec.template
        prepare = DetectAndAlign(FaceCropper(detector), spec)
    try:
        if group.is_main:  # created only now that everything else is valid
            check_output_dir(args.output, inputs=[args.input])
        group.barrier()
        summary = run_embedding(
            items, prepare, embedder.embed_crops, embedder.embedding_size, args.output, settings,
            shard_size=args.shard_size, batch_size=args.batch_size, fmt=args.fmt, workers=args.workers,
            overwrite=args.overwrite, progress=not args.no_progress and group.is_main, group=group,
        )
    except (OutputConflictError, OutputError, RuntimeError) as exc:
        return fail("embed", exc)
    if not summary.merged:  # another process of a launch: its shards are written, the main process reports
        return 0
    files = ", ".join(str(p) for p in summary.output_files)
    if summary.already_complete:
        print(f"{args.output} already holds the complete results of this run: {files}")
    else:
        resumed = f" ({summary.resumed_from_row} rows were done by an earlier run)" if summary.resumed_from_row else ""
        print(f"embedded {summary.n_ok} of {summary.n_rows} images ({layout} layout){resumed} -> {files}")
    if summary.failures:
        reasons = "; ".join(f"{n} x {reason}" for reason, n in summary.failures.most_common(5))
        print(f"{summary.n_rows - summary.n_ok} rows without embedding (see the error column): {reasons}", file=sys.stderr)
    if n_skipped:
        print(f"{n_skipped} folder entries were skipped (unsupported format, symlink loop, unreadable folder); "
              "each has a row with the reason", file=sys.stderr)
    non_finite = sum(n for reason, n in summary.failures.items() if reason.startswith("non-finite"))
    return 0 if summary.n_ok and not n_skipped and not non_finite else 1
