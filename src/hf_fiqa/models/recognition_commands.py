"""CLI for the face-recognition models: ``hf-fiqa embed`` and ``hf-fiqa convert iresnet``.

``register(subparsers)`` adds ``embed`` to the top-level command; ``register_convert(convert_subparsers)``
adds ``iresnet`` to the ``convert`` group owned by :mod:`hf_fiqa.models.commands`. Heavy imports
(torch, transformers, OpenCV) happen inside the handlers so ``hf-fiqa --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


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
    p.add_argument("input", type=Path, help="image folder, identity folder or CSV file")
    p.add_argument("--model", required=True, help="recognition model folder (save_pretrained / hf-fiqa convert) or Hub id")
    p.add_argument("--output", "-o", required=True, type=Path, help="output folder")
    p.add_argument("--aligned", action="store_true",
                   help="inputs are already aligned face crops (resized to the model's input size if needed); "
                        "otherwise faces are detected with YuNet and aligned to the ArcFace template")
    p.add_argument("--layout", choices=("auto", "images", "identities", "csv"), default="auto",
                   help="how INPUT is organised (default: guess)")
    p.add_argument("--format", dest="fmt", choices=("npy", "parquet"), default="npy", help="output format (default npy)")
    p.add_argument("--batch-size", type=int, default=64, help="faces per forward pass (default 64)")
    p.add_argument("--shard-size", type=int, default=1024, help="rows per resumable shard (default 1024)")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--flip", action="store_true", help="add the embedding of the mirrored face (insightface evaluation protocol)")
    p.add_argument("--workers", type=int, default=2, help="threads reading images (default 2)")
    p.add_argument("--detector-weights", default=None, help="YuNet ONNX file (default: $HF_FIQA_DETECTOR_WEIGHTS or the HF Hub cache)")
    p.add_argument("--overwrite", action="store_true", help="discard earlier results or an unfinished run in OUTPUT")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run_embed_command)


def register_convert(convert_subparsers: argparse._SubParsersAction) -> None:
    """Add ``iresnet`` to the ``hf-fiqa convert`` group."""
    p = convert_subparsers.add_parser(
        "iresnet",
        help="convert an insightface arcface_torch or MagFace iResNet checkpoint",
        description=(
            "Convert an iResNet checkpoint (.pth/.pt read with torch.load(weights_only=True), or .safetensors) "
            "into a transformers folder (config.json, model.safetensors, modeling code). Depth, widths and "
            "embedding size are read from the tensors; the layout sets the input normalisation (arcface_torch: "
            "RGB, (x/255-0.5)/0.5; magface: BGR, x/255) and BatchNorm eps."
        ),
    )
    p.add_argument("src", type=Path, help="checkpoint file")
    p.add_argument("dst", type=Path, help="output folder")
    p.add_argument("--layout", choices=("auto", "arcface_torch", "magface"), default="auto",
                   help="key layout of SRC (default: detect from the key prefixes)")
    p.add_argument("--depth", type=int, choices=(18, 34, 50, 100, 200), default=None,
                   help="expected depth; conversion fails if the checkpoint has another")
    p.set_defaults(func=run_convert_iresnet_command)


def run_convert_iresnet_command(args: argparse.Namespace) -> int:
    from .iresnet.convert_iresnet import CheckpointMismatchError, convert_checkpoint

    try:
        conversion = convert_checkpoint(args.src, args.dst, layout=args.layout, depth=args.depth)
    except (FileNotFoundError, CheckpointMismatchError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    cfg = conversion.model.config
    name = f"iResNet-{cfg.depth}" if cfg.depth else f"iResNet with layers {cfg.layers}"
    print(
        f"converted {args.src} ({conversion.layout} layout) -> {args.dst}: {name}, widths {cfg.widths}, "
        f"{cfg.embedding_size}-d embeddings, {cfg.image_size}x{cfg.image_size} {cfg.channel_order} input, "
        f"mean {cfg.image_mean}, std {cfg.image_std}"
    )
    if conversion.dropped_keys:
        print(f"dropped {len(conversion.dropped_keys)} training-head keys: {', '.join(conversion.dropped_keys[:8])}"
              + (" ..." if len(conversion.dropped_keys) > 8 else ""))
    return 0


def _aligned_preparer(size: int):
    """Read an already aligned crop; resize it to ``size`` when it is another size."""
    import cv2
    import numpy as np

    from ..io import ImageReadError, load_image
    from .embedding_job import PreparedFace

    def prepare(item: Any) -> PreparedFace:
        try:
            crop = np.asarray(load_image(item.file))
        except ImageReadError as exc:
            return PreparedFace(None, error=exc.reason)
        if crop.shape[:2] != (size, size):
            shrink = crop.shape[0] > size or crop.shape[1] > size
            crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        return PreparedFace(np.ascontiguousarray(crop))

    return prepare


def _detecting_preparer(detector: Any, size: int):
    """Detect faces, keep the largest (the photo's subject in identity datasets), align it to ``size``."""
    import numpy as np

    from ..faces import align_face
    from ..io import ImageReadError, load_image
    from .embedding_job import PreparedFace

    def prepare(item: Any) -> PreparedFace:
        try:
            rgb = np.asarray(load_image(item.file))
        except ImageReadError as exc:
            return PreparedFace(None, error=exc.reason)
        try:
            faces = detector.detect(rgb)
            if not faces:
                return PreparedFace(None, error="no face detected", n_faces=0)
            face = max(faces, key=lambda f: float((f.box[2] - f.box[0]) * (f.box[3] - f.box[1])))
            crop = align_face(rgb, face, size=size).crop
        except Exception as exc:  # one odd photo must not end a long run; the reason is recorded
            return PreparedFace(None, error=f"detection/alignment failed: {type(exc).__name__}: {exc}")
        return PreparedFace(crop, n_faces=len(faces), det_score=float(face.score))

    return prepare


def run_embed_command(args: argparse.Namespace) -> int:
    from .embedding_inputs import list_inputs
    from .embedding_job import OutputConflictError, run_embedding
    from .recognition_embedder import RecognitionEmbedder

    for name in ("batch_size", "shard_size", "workers"):
        if getattr(args, name) <= 0:
            print(f"error: --{name.replace('_', '-')} must be positive, got {getattr(args, name)}", file=sys.stderr)
            return 2
    try:
        items, layout = list_inputs(args.input, args.layout)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not items:
        print(f"error: no images found in {args.input}", file=sys.stderr)
        return 2
    try:
        embedder = RecognitionEmbedder(args.model, device=args.device, batch_size=args.batch_size, flip=args.flip)
    except (ValueError, TypeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    size = embedder.crop_size
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
    if args.aligned:
        prepare = _aligned_preparer(size)
    else:
        try:
            from ..faces import YuNetDetector
        except ImportError as exc:
            print(f"error: face detection is unavailable ({exc}); pass --aligned for pre-aligned crops", file=sys.stderr)
            return 2
        try:
            detector = YuNetDetector(args.detector_weights)
        except (FileNotFoundError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        settings["detector"] = repr(detector)
        prepare = _detecting_preparer(detector, size)
    try:
        summary = run_embedding(
            items, prepare, embedder.embed_crops, embedder.embedding_size, args.output, settings,
            shard_size=args.shard_size, fmt=args.fmt, workers=args.workers, overwrite=args.overwrite,
            progress=not args.no_progress,
        )
    except (OutputConflictError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    files = ", ".join(str(p) for p in summary.output_files)
    if summary.already_complete:
        print(f"{args.output} already holds the complete results of this run: {files}")
    else:
        resumed = f" (resumed at row {summary.resumed_from_row})" if summary.resumed_from_row else ""
        print(f"embedded {summary.n_ok} of {summary.n_rows} images ({layout} layout){resumed} -> {files}")
    if summary.failures:
        reasons = "; ".join(f"{n} x {reason}" for reason, n in summary.failures.most_common(5))
        print(f"{summary.n_rows - summary.n_ok} rows without embedding (see the error column): {reasons}", file=sys.stderr)
    return 0 if summary.n_ok else 1
