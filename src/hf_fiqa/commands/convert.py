"""``hf-fiqa convert NAME SRC DST``: official checkpoints -> saved hf-fiqa model folders.

One sub-command per entry of :data:`hf_fiqa.models.conversion.CONVERTERS`; building them imports
neither torch nor any model family (the family's convert module is imported when its sub-command runs).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..models.conversion import CONVERTERS, Converter


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("convert", help="convert an official checkpoint into a saved hf-fiqa model folder")
    models = parser.add_subparsers(dest="model", required=True)
    for name, converter in CONVERTERS.items():
        add_converter(models, name, converter)


def add_converter(models: argparse._SubParsersAction, name: str, converter: Converter) -> argparse.ArgumentParser:
    """Add the sub-command ``name`` for ``converter`` to the ``convert`` group."""
    sub = models.add_parser(name, help=converter.help, description=converter.description or converter.help)
    if converter.src_optional:
        sub.add_argument("src", nargs="?", default=None, help=converter.src_help + " (optional)")
    else:
        sub.add_argument("src", help=converter.src_help)
    sub.add_argument("dst", help="output folder (save_pretrained layout)")
    sub.add_argument("--overwrite", action="store_true", help="replace a model already saved in DST")
    for option in converter.options:
        sub.add_argument(*option.flags, dest=option.dest, help=option.help, **dict(option.kwargs))
    sub.set_defaults(func=lambda args: run_converter(name, converter, args), loads_models=True)
    return sub


def run_converter(name: str, converter: Converter, args: argparse.Namespace) -> int:
    """Call the converter with SRC, DST and the given options; print one line; 0 on success, 2 on error."""
    from .options import OutputError, check_output_dir, check_output_folder_free, is_url

    options = {o.dest: getattr(args, o.dest) for o in converter.options if getattr(args, o.dest) is not None}
    try:
        if args.src is not None and is_url(args.src):
            raise OutputError(f"{args.src}: URLs are not supported, download the checkpoint first")
        check_output_dir(args.dst, inputs=[args.src] if args.src is not None else [], what="DST", create=False)
        check_output_folder_free(args.dst, ("config.json", "model.safetensors", "pytorch_model.bin"),
                                 getattr(args, "overwrite", False), what="DST")
    except OutputError as exc:
        print(f"hf-fiqa convert {name}: {exc}", file=sys.stderr)
        return 2
    try:
        model = converter.load()(args.src, args.dst, **options)
        summary = converter.describe(model)
    except (ValueError, OSError) as exc:  # CheckpointError is a ValueError; a missing file an OSError
        print(f"hf-fiqa convert {name}: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, SystemExit, MemoryError):
        raise
    except Exception as exc:  # safetensors, pickle, zip and numpy readers raise their own types for a corrupt file
        src = args.src if args.src is not None else "the default checkpoint"
        print(f"hf-fiqa convert {name}: cannot read {src}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    if (Path(args.dst) / "config.json").is_file():  # a saved model folder: make it Hub-native for its kind
        package_converted(args.dst, converter.kind, converted_from=str(args.src or "the default checkpoint"))
    print(f"converted {args.src if args.src is not None else '(default checkpoint)'} -> {args.dst} ({summary})")
    return 0


def package_converted(dst: str | Path, kind: str, converted_from: str) -> None:
    """What a saved folder gets beside the converter's own files, by the converter's ``kind``
    (:data:`hf_fiqa.models.conversion.KINDS`): a quality model the ``face-image-quality`` pipeline code and a
    quality card, a recognizer a recognition card; a landmark model stays the plain model folder the converter
    saved (model, config, processor and their code), since :mod:`hf_fiqa.hub` has no card for landmark models."""
    if kind == "landmarks":
        return
    import shlex

    from ..hub import package_quality_model, write_model_card

    if kind == "quality":
        package_quality_model(dst, write_card=False)
    write_model_card(dst, task="recognition" if kind == "recognizer" else None, converted_from=converted_from,
                     command=shlex.join(["hf-fiqa", *sys.argv[1:]]))
