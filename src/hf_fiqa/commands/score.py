"""``hf-fiqa score`` (photos) and ``hf-fiqa video``: rows per face.

Every argument and output location is checked before a model is loaded or a frame decoded (see
:mod:`hf_fiqa.commands.options`); outputs are written under a temporary name and moved into place when complete.
``score --output`` goes through resumable shards (:mod:`hf_fiqa.sharding`): ``accelerate launch -m hf_fiqa.cli
score ...`` splits the photos over processes, and an interrupted run computes only what is missing; without
``--output`` the rows stream to stdout from one process.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Iterator

from ..atomic import ROW_SUFFIXES, RowWriter
from .options import (
    OutputError,
    UsageError,
    add_device_args,
    add_progress_args,
    add_workers_arg,
    check_output_file,
    fail,
    is_url,
    positive_float,
    positive_int,
    resolve_device,
    torch_dtype,
)

FACE_COLUMNS = ["path", "face_index", "x1", "y1", "x2", "y2", "detection_score", "quality", "status", "reason"]
VIDEO_COLUMNS = ["frame_index", "time", "quality", "box", "detection_score", "num_faces"]
PLOT_SUFFIXES = (".png", ".pdf", ".svg")


def component_columns(acceptance: bool) -> list[str]:
    """What ``--components`` adds per face: each component's 0-100 value and native value, the reasons of those
    that could not be computed, the lowest ones in words, and with ``--acceptable`` the rule's verdict."""
    from ..components import COMPONENT_NAMES

    columns = [c for name in COMPONENT_NAMES for c in (name, f"{name}_native")]
    columns += ["component_reasons", "concerns"]
    return columns + (["acceptable", "failed_checks"] if acceptance else [])


def face_columns(args: argparse.Namespace) -> list[str]:
    """The columns ``score`` writes with these arguments."""
    if not args.components and args.acceptable is None:
        return FACE_COLUMNS
    return FACE_COLUMNS + component_columns(args.acceptable is not None)


def component_cells(face: dict) -> dict:
    """The ``--components`` columns of one face record (see :func:`component_columns`)."""
    if "components" not in face:
        return {}
    from ..components import as_columns

    row = as_columns(face["components"], face["concerns"])
    if "acceptable" in face:
        row["acceptable"], row["failed_checks"] = face["acceptable"], "; ".join(face["failed"])
    return row


def expand_inputs(paths: list[str], skipped: list | None = None, exclude: tuple = ()) -> list[str]:
    """Files as given; folders expanded recursively to their image files, sorted.

    What a folder scan leaves out (unsupported formats, symlink loops, unreadable sub-folders) is appended to
    ``skipped`` as ``(path, reason)``; a missing or non-image file given by name stays an input (it becomes an
    error row, not a crash).
    """
    from ..io import scan_images

    out: list[str] = []
    for p in paths:
        if not is_url(p) and Path(p).is_dir():
            out.extend(str(f) for f in scan_images(p, skipped, exclude))
        else:
            out.append(str(p))
    return out


def record_rows(record: dict) -> Iterator[dict]:
    """Flatten one pipeline record into CSV/JSONL rows: one per face, plus one for a failed or face-less input."""
    for face in record["faces"]:
        x1, y1, x2, y2 = face["box"]
        yield {"path": record["input"], "face_index": face["face_index"], "x1": x1, "y1": y1, "x2": x2, "y2": y2,
               "detection_score": face["detection_score"], "quality": face["quality"], "status": "ok", "reason": "",
               **component_cells(face)}
    if record["error"]:
        yield {"path": record["input"], "status": "error", "reason": record["error"]}
    elif not record["faces"]:
        yield {"path": record["input"], "status": "no_face", "reason": record["reason"]}


def apply_dtype(scorer: Any, dtype: Any) -> None:
    """Cast a loaded model scorer to ``dtype`` (baselines have no weights and are left as they are)."""
    if dtype is None:
        return
    holder = scorer if hasattr(scorer, "model") else getattr(scorer, "embedder", None)
    model = getattr(holder, "model", None)
    if model is None:
        return
    model.to(dtype)
    if hasattr(holder, "dtype"):
        holder.dtype = dtype


def _analyzer(args: argparse.Namespace, group: Any = None):
    """Load the scorer and detector; problems become :class:`UsageError` (a message, not a traceback)."""
    from ..scorers import load_scorer
    from ..pipelines.face_quality import FaceQualityAnalyzer

    from ..scorers.onnx import OnnxQualityScorer

    device = resolve_device(args.device, group)
    dtype = torch_dtype(getattr(args, "dtype", None))
    backend = "torch" if args.backend == "auto" and dtype is not None else args.backend  # --dtype is torch's
    try:
        scorer = load_scorer(args.model, device=device, batch_size=args.batch_size, backend=backend)
        if not isinstance(scorer, OnnxQualityScorer):
            apply_dtype(scorer, dtype)
        analyzer = FaceQualityAnalyzer(scorer, detector_weights=args.detector_weights,
                                       largest_face_only=args.largest_face_only, min_face_size=args.min_face_size,
                                       components=args.components, face_mesh=args.face_mesh,
                                       acceptance=getattr(args, "acceptable", None))
    except (ValueError, OSError, ImportError) as exc:
        raise UsageError(str(exc)) from None
    try:
        analyzer.detector  # load the face detector now: a bad --detector-weights fails before any work
    except Exception as exc:  # OpenCV raises cv2.error, not an OSError
        raise UsageError(f"cannot load the face detector: {exc}") from None
    return analyzer


def _check_rule(rule: str | None) -> None:
    """A malformed ``--acceptable`` rule fails before any model is loaded."""
    if rule is not None:
        from ..components import AcceptanceRule

        try:
            AcceptanceRule.parse(rule)
        except ValueError as exc:
            raise UsageError(f"--acceptable: {exc}") from None


def _percentiles(values: list[float]) -> str:
    import numpy as np

    if not values:
        return "no quality"
    p5, p50, p95 = np.percentile(np.asarray(values, dtype=np.float64), [5, 50, 95])
    return f"quality p5 {p5:.4g}, p50 {p50:.4g}, p95 {p95:.4g}"


def write_histogram(values: list[float], path: str | os.PathLike, title: str) -> Path:
    """A PNG (or PDF/SVG) histogram of the qualities, written atomically."""
    from matplotlib.figure import Figure

    from ..atomic import save_figure

    fig = Figure(figsize=(6, 4), dpi=120)
    ax = fig.add_subplot()
    ax.hist(values, bins=min(50, max(5, len(values) // 2 or 1)), color="#4c72b0")
    ax.set_xlabel("quality")
    ax.set_ylabel("faces")
    ax.set_title(title)
    fig.tight_layout()
    return save_figure(fig, path)


class ScoreTally:
    """What ``hf-fiqa score`` reports at the end, counted from the rows it wrote (streamed or merged shards)."""

    def __init__(self) -> None:
        self.faces = self.no_face = self.failed = self.skipped = 0
        self.qualities: list[float] = []

    def add(self, row: dict) -> None:
        status = row.get("status")
        if status == "ok":
            self.faces += 1
            self.qualities.append(float(row["quality"]))
        elif status == "error":
            self.failed += 1
        elif status == "no_face":
            self.no_face += 1
        elif status == "skipped":
            self.skipped += 1


def _score_in_shards(args: argparse.Namespace, analyzer: Any, inputs: list[str], skipped: list[tuple[str, str]],
                     output: Path, group: Any) -> int:
    """Score ``inputs`` into ``output`` through resumable shards (:mod:`hf_fiqa.sharding`), this process's share
    of them; the main process then writes ``output``: the skipped entries, then every shard in order.
    Returns how many photos an earlier, interrupted run had already scored."""
    from tqdm.auto import tqdm

    from ..sharding import ShardedRun, fingerprint, prepared_batches

    suffix = output.suffix.lower()
    settings = {
        "model": str(Path(args.model).resolve()) if Path(args.model).exists() else str(args.model),
        "scorer": type(analyzer.scorer).__name__, "dtype": getattr(args, "dtype", None),
        "detector": repr(analyzer.detector),
        "largest_face_only": bool(args.largest_face_only), "min_face_size": float(args.min_face_size),
        "columns": face_columns(args), "format": suffix, "face_mesh": args.face_mesh, "acceptable": args.acceptable,
    }
    run = ShardedRun(output.parent / f".{output.name}.shards", len(inputs), args.shard_size,
                     fingerprint(inputs, settings), (suffix,), group)
    run.open(overwrite=args.overwrite)
    resumed = run.rows_done()
    mine = run.mine()
    bar = tqdm(total=sum(len(run.rows(s)) for s in mine), initial=run.rows_done(mine), unit="photo",
               desc=" ".join(filter(None, ("scoring faces", group.describe()))),
               disable=args.no_progress or not group.is_main)
    writer = None
    try:
        for batch in prepared_batches(inputs, analyzer.preparer(), run.batches(args.batch_size), args.workers):
            if writer is None:
                writer = RowWriter(run.path(batch.shard, suffix), face_columns(args), keep_partial=False)
            for record in analyzer.score_chunk(batch.prepared, bar, args.batch_size):
                for row in record_rows(record):
                    writer.write(row)
            if batch.last:
                writer.close(ok=True)
                writer = None
    finally:
        bar.close()
        if writer is not None:
            writer.close(ok=False)
    run.wait_for_all()
    if group.is_main:
        merged = RowWriter(output, face_columns(args), keep_partial=False)
        try:
            for path, reason in skipped:
                merged.write({"path": path, "status": "skipped", "reason": reason})
            for shard in range(run.n_shards):
                merged.append_rows_of(run.path(shard, suffix))
        except BaseException:
            merged.close(ok=False)
            raise
        merged.close(ok=True)
        run.remove()
    return resumed


def _score_to_stdout(args: argparse.Namespace, analyzer: Any, inputs: list[str], skipped: list[tuple[str, str]],
                     tally: ScoreTally) -> None:
    writer = RowWriter(None, face_columns(args))

    def emit(row: dict) -> None:
        writer.write(row)
        tally.add(row)

    for path, reason in skipped:
        emit({"path": path, "status": "skipped", "reason": reason})
    for record in analyzer.iter_records(inputs, progress=not args.no_progress, total=len(inputs),
                                        batch_size=args.batch_size, workers=args.workers):
        for row in record_rows(record):
            emit(row)
    writer.close()


def run_score(args: argparse.Namespace) -> int:
    from ..atomic import read_row_file
    from ..sharding import OutputConflictError, process_group

    try:
        if args.batch_size < 1:
            raise UsageError(f"--batch-size must be positive, got {args.batch_size}")
        skipped: list[tuple[str, str]] = []
        exclude = tuple(p for p in (args.output, args.histogram) if p)
        inputs = expand_inputs(args.paths, skipped, exclude)
        output = check_output_file(args.output, ROW_SUFFIXES, inputs=[*args.paths, *inputs],
                                   overwrite=args.overwrite)
        histogram = check_output_file(args.histogram, PLOT_SUFFIXES, inputs=[*args.paths, *inputs, args.output],
                                      overwrite=args.overwrite, what="--histogram")
        if not inputs and not skipped:
            raise UsageError("no input files found")
        _check_rule(args.acceptable)
        group = process_group()
        if group.world > 1 and output is None:
            raise UsageError(f"{group.world} processes write one result: give --output FILE.csv or FILE.jsonl")
        analyzer = _analyzer(args, group)
    except (UsageError, OutputError) as exc:
        return fail("score", exc)
    tally, resumed = ScoreTally(), 0
    if output is None:
        _score_to_stdout(args, analyzer, inputs, skipped, tally)
    else:
        try:
            resumed = _score_in_shards(args, analyzer, inputs, skipped, output, group)
        except (OutputConflictError, RuntimeError) as exc:
            return fail("score", exc)
        if not group.is_main:  # another process of a launch: its shards are written, the main process reports
            return 0
        for row in read_row_file(output):
            tally.add(row)
    if histogram is not None:
        write_histogram(tally.qualities, histogram, f"{tally.faces} faces in {len(inputs)} inputs")
    print(f"{len(inputs)} inputs: {tally.faces} faces scored, {tally.no_face} without a face, {tally.failed} failed"
          f"{f', {tally.skipped} entries skipped' if tally.skipped else ''}; {_percentiles(tally.qualities)}"
          f"{f' ({resumed} photos were scored by an earlier run)' if resumed else ''}", file=sys.stderr)
    return 1 if tally.failed or tally.skipped else 0


def run_video(args: argparse.Namespace) -> int:
    try:
        if args.batch_size < 1:
            raise UsageError(f"--batch-size must be positive, got {args.batch_size}")
        if is_url(args.file):
            raise UsageError(f"{args.file}: URLs are not supported, download the file first")
        if not Path(args.file).is_file():
            raise UsageError(f"{args.file}: no such file" if not Path(args.file).exists() else f"{args.file}: not a file")
        output = check_output_file(args.output, ROW_SUFFIXES, inputs=[args.file], overwrite=args.overwrite)
        plot = check_output_file(args.plot, PLOT_SUFFIXES, inputs=[args.file, args.output], overwrite=args.overwrite,
                                 what="--plot")
        try:
            import av  # noqa: F401
        except ImportError:
            raise UsageError("video scoring needs PyAV: pip install 'hf-fiqa[video]'") from None
        if plot is not None:
            try:
                import matplotlib  # noqa: F401
            except ImportError:
                raise UsageError("--plot needs matplotlib: pip install 'hf-fiqa[eval]'") from None
        analyzer = _analyzer(args)
    except (UsageError, OutputError) as exc:
        return fail("video", exc)
    from ..pipelines.video import plot_quality_series, score_video

    result = score_video(args.file, analyzer, every_n=args.every_n, target_fps=args.fps, max_frames=args.max_frames,
                         progress=not args.no_progress, batch_frames=args.batch_size)
    columns = VIDEO_COLUMNS + (component_columns(False) if analyzer.components is not None else [])
    writer = RowWriter(output, columns)
    ok = False
    try:
        for frame in result.frames:
            writer.write(frame.row())
        ok = True
    finally:
        writer.close(ok=ok)
    if plot is not None:
        plot_quality_series(result, plot, best=args.best)
    best = ", ".join(f"frame {f.frame_index} ({f.quality:.3f})" for f in result.best_frames(args.best))
    print(f"{len(result.frames)} frames sampled of {result.frames_decoded} decoded; best: {best or 'none'}", file=sys.stderr)
    if result.error:
        print(f"hf-fiqa video: {result.error}", file=sys.stderr)
        return 1
    return 0


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True,
                        help="model folder or Hub id (MANIQA, MagFace iResNet), or a baseline: "
                             "inter_eye_distance, face_size, detector_confidence, sharpness, head_pose_5pt, random")
    parser.add_argument("--output", help="FILE.csv or FILE.jsonl (default: CSV on stdout)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    parser.add_argument("--batch-size", type=positive_int, default=16, help="faces per forward pass")
    parser.add_argument("--backend", choices=("auto", "torch", "onnxruntime"), default="auto",
                        help="onnxruntime: run an `hf-fiqa export onnx` export (a .onnx file, or a model folder "
                             "holding onnx/model.onnx); needs pip install 'hf-fiqa[onnx]'. auto (default): "
                             "onnxruntime on the CPU when the model folder holds such an export, else torch")
    add_device_args(parser)
    parser.add_argument("--detector-weights", default=None, help="YuNet ONNX file (else $HF_FIQA_DETECTOR_WEIGHTS, else the Hub)")
    parser.add_argument("--largest-face-only", action="store_true")
    parser.add_argument("--min-face-size", type=float, default=0.0, help="ignore faces smaller than this (px)")
    parser.add_argument("--components", action="store_true",
                        help="add the ISO/IEC 29794-5-style quality components (head pose, eyes open, crops, "
                             "exposure, ...) as columns: each 0-100 value and native value, the reasons of those "
                             "that cannot be computed, and the lowest ones in words")
    parser.add_argument("--face-mesh", default=None, metavar="FOLDER",
                        help="face-mesh model for the components (`hf-fiqa convert face-mesh DST`; else "
                             "$HF_FIQA_FACE_MESH); without one, eyes open, mouth closed and pitch give reasons and "
                             "yaw/roll come from the 5 landmarks")
    add_progress_args(parser)


def register(subparsers: argparse._SubParsersAction) -> None:
    score = subparsers.add_parser("score", help="score every face in photos (files and folders, recursive)")
    score.add_argument("paths", nargs="+")
    _common(score)
    score.add_argument("--histogram", default=None, help="PNG histogram of the face qualities")
    score.add_argument("--acceptable", nargs="?", const="default", default=None, metavar="RULE",
                       help="add an acceptable column: the quality and chosen components at or above minima, "
                            "e.g. 'quality>=60,eyes_open>=40' (bare flag: the default rule, see the README); "
                            "implies --components")
    add_workers_arg(score)
    score.add_argument("--shard-size", type=positive_int, default=1024,
                       help="photos per resumable shard when writing --output (default 1024); an interrupted run "
                            "started again with the same arguments computes only the missing shards")
    score.set_defaults(func=run_score, loads_models=True)

    video = subparsers.add_parser("video", help="score the main face across a video's frames")
    video.add_argument("file")
    _common(video)
    video.add_argument("--every-n", type=positive_int, default=None, help="score every n-th frame")
    video.add_argument("--fps", type=positive_float, default=None, help="sample about this many frames per second")
    video.add_argument("--max-frames", type=positive_int, default=None)
    video.add_argument("--best", type=positive_int, default=5, help="how many best frames to report")
    video.add_argument("--plot", default=None, help="PNG of the quality series")
    video.set_defaults(func=run_video, loads_models=True)
