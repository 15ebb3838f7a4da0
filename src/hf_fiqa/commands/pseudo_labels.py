"""``hf-fiqa pseudo-label``: SDD-FIQA pseudo-labels from saved embeddings.

Heavy imports (numpy, torch, pandas) happen inside the handler so ``hf-fiqa --help`` stays fast.
Started by a multi-process launcher (``torchrun --nproc_per_node N``, or ``accelerate launch
--multi_gpu`` on GPUs; ``accelerate launch --cpu`` starts a single process unless MPI is set up),
each process labels a shard of identities through accelerate; the raw distances are gathered,
normalised over the whole dataset, and the main process writes the outputs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ..atomic import atomic_write, save_figure
from .options import (
    OutputError,
    UsageError,
    add_device_args,
    add_progress_args,
    check_output_file,
    fail,
    positive_int,
    whole_number,
)

__all__ = ["register", "main"]


_count = whole_number(1, "all", "all")  # --num-pos / --num-neg
_pool = whole_number(1, "none", None)  # --neg-pool-size


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``pseudo-label`` sub-command."""
    p = subparsers.add_parser(
        "pseudo-label",
        help="SDD-FIQA quality pseudo-labels from face embeddings and identities",
        description=(
            "Compute SDD-FIQA pseudo-labels: per image, the Wasserstein-1 distance between its "
            "similarities to other images of its identity and to images of other identities, "
            "min-max normalised to [0, 100] per repetition and averaged. Identities with a single "
            "image are skipped. Writes a parquet table (row, identity, wasserstein, quality) and a "
            "JSON report. Several processes (torchrun, or accelerate launch --multi_gpu) split the work."
        ),
    )
    p.add_argument("--embeddings", required=True, type=Path, help="(N, D) float16/32 .npy file (memory-mapped)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--identities", type=Path, help="(N,) .npy of integer or unicode-string identities")
    source.add_argument(
        "--rows",
        type=Path,
        help="rows.csv of `hf-fiqa embed` instead of --identities: its 'identity' column, using only "
        "rows with ok=True (failed rows hold NaN embeddings); 'row' indexes the embeddings",
    )
    p.add_argument("--output", required=True, type=Path, help="parquet file to write")
    p.add_argument("--overwrite", action="store_true", help="replace existing output, report and histogram files")
    p.add_argument("--num-pos", type=_count, default=24, help="positives per image, or 'all' (default 24)")
    p.add_argument("--num-neg", type=_count, default=24, help="negatives per image, or 'all' (default 24)")
    p.add_argument("--repetitions", type=positive_int, default=12, help="random repetitions averaged (default 12)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    add_device_args(p, dtype=False)
    p.add_argument("--chunk-size", type=positive_int, default=32768, help="rows per processing chunk (memory knob)")
    p.add_argument(
        "--neg-pool-size",
        type=_pool,
        default=256,
        help="negative candidates shared per sampling block and repetition; 'none' = independent draws (slower)",
    )
    p.add_argument("--cache-gib", type=float, default=2.0, help="keep normalised float32 embeddings in memory up to this size")
    p.add_argument("--report", type=Path, default=None, help="JSON report path (default: OUTPUT with .report.json)")
    p.add_argument("--histogram", type=Path, default=None, help="write a PNG histogram of the labels")
    add_progress_args(p)
    p.set_defaults(func=run)


def _load_inputs(args: argparse.Namespace):
    """(embeddings memory map, identities, selected rows or None, rows left out)."""
    import numpy as np

    labels_path = args.identities if args.identities is not None else args.rows
    for path in (args.embeddings, labels_path):
        if not path.is_file():
            raise FileNotFoundError(f"no such file: {path}")
    from ..embedding.store import read_embeddings, usable_rows

    embeddings = read_embeddings(args.embeddings, mmap=True)
    if args.rows is not None:
        rows, identities, left_out = usable_rows(args.rows)
        return embeddings, identities, rows, left_out
    try:
        identities = np.load(args.identities, allow_pickle=False)
    except ValueError as exc:
        raise ValueError(
            f"cannot read identities {args.identities}: {exc} (strings must be saved as a unicode "
            "array, e.g. np.save(path, np.asarray(names, dtype=str)))"
        ) from None
    return embeddings, identities, None, 0


def _write_histogram(path: Path, quality, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(quality, bins=100, range=(0, 100), color="#4c72b0")
    ax.set_xlabel("SDD-FIQA pseudo-label (quality, 0-100)")
    ax.set_ylabel("images")
    ax.set_title(title)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
    plt.close(fig)


def _accelerator_if_launched(device: str):
    """An Accelerator when started by a multi-process launcher, else None."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    from accelerate import Accelerator

    return Accelerator(cpu=str(device).startswith("cpu"))


def run(args: argparse.Namespace) -> int:
    """Handler of ``hf-fiqa pseudo-label``; returns an exit code."""
    from ..labels.embeddings import EmbeddingError

    labels_path = args.identities if args.identities is not None else args.rows
    report_path = args.report or args.output.with_suffix(".report.json")
    try:
        inputs = [args.embeddings, labels_path]
        check_output_file(args.output, (".parquet",), inputs=inputs, overwrite=args.overwrite)
        check_output_file(report_path, (".json",), inputs=[*inputs, args.output], overwrite=args.overwrite,
                          what="--report")
        check_output_file(args.histogram, (".png", ".pdf", ".svg"), inputs=[*inputs, args.output, report_path],
                          overwrite=args.overwrite, what="--histogram")
        from .options import resolve_device

        args.device = resolve_device(args.device)
        embeddings, identities, rows, left_out = _load_inputs(args)
    except (OutputError, UsageError) as exc:
        return fail("pseudo-label", exc)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from ..labels.sdd import sdd_pseudo_labels

    accelerator = _accelerator_if_launched(args.device)
    main_process = accelerator is None or accelerator.is_main_process
    try:
        frame, report = sdd_pseudo_labels(
            embeddings,
            identities,
            num_pos=args.num_pos,
            num_neg=args.num_neg,
            repetitions=args.repetitions,
            seed=args.seed,
            device=args.device,
            chunk_size=args.chunk_size,
            accelerator=accelerator,
            neg_pool_size=args.neg_pool_size,
            progress=not args.no_progress,
            cache_bytes=int(args.cache_gib * 2**30),
            rows=rows,
        )
    except (EmbeddingError, ValueError) as exc:
        print(f"error: {args.embeddings} / {args.identities or args.rows}: {exc}", file=sys.stderr)
        return 2
    if not main_process:
        return 0
    if len(frame) == 0:
        return fail("pseudo-label", f"no image could be labelled from {args.identities or args.rows}: "
                    f"{report.identities} identities, none with two or more usable images (SDD-FIQA needs "
                    "genuine pairs)", code=1)
    atomic_write(args.output, lambda tmp: frame.to_parquet(tmp, engine="pyarrow", index=False))
    info = report.to_dict()
    if args.rows is not None:
        info["rows_left_out_not_ok"] = left_out
    info["output"] = str(args.output)
    atomic_write(report_path, lambda tmp: tmp.write_text(json.dumps(info, indent=2) + "\n"))
    info["report"] = str(report_path)
    if args.histogram is not None:
        _write_histogram(args.histogram, frame["quality"].to_numpy(), f"{report.labelled_rows} images, {report.identities} identities")
        info["histogram"] = str(args.histogram)
    print(json.dumps(info, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run this sub-command alone (``python -m hf_fiqa.labels.commands pseudo-label ...``)."""
    parser = argparse.ArgumentParser(prog="hf-fiqa")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
