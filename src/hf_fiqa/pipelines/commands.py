"""``hf-fiqa score`` (photos) and ``hf-fiqa video``: rows per face, written as they are produced."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Iterator, TextIO

FACE_COLUMNS = ["path", "face_index", "x1", "y1", "x2", "y2", "detection_score", "quality", "status", "reason"]


def expand_inputs(paths: list[str]) -> list[str]:
    """Files as given; folders expanded recursively to their image files, sorted."""
    from ..io import IMAGE_SUFFIXES

    out: list[str] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(str(f) for f in sorted(p.rglob("*")) if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        else:
            out.append(str(p))  # a missing or non-image file becomes an error row, not a crash
    return out


def record_rows(record: dict) -> Iterator[dict]:
    """Flatten one pipeline record into CSV/JSONL rows: one per face, or one for a failed or face-less input."""
    if record["error"]:
        yield {"path": record["input"], "status": "error", "reason": record["error"]}
        return
    if not record["faces"]:
        yield {"path": record["input"], "status": "no_face", "reason": record["reason"]}
        return
    for face in record["faces"]:
        x1, y1, x2, y2 = face["box"]
        yield {"path": record["input"], "face_index": face["face_index"], "x1": x1, "y1": y1, "x2": x2, "y2": y2,
               "detection_score": face["detection_score"], "quality": face["quality"], "status": "ok", "reason": ""}


class RowWriter:
    """CSV or JSONL (by suffix) to a file, or CSV to stdout."""

    def __init__(self, output: str | None, columns: list[str]):
        self.columns = columns
        self.jsonl = bool(output) and output.endswith(".jsonl")
        self.handle: TextIO = open(output, "w", newline="") if output else sys.stdout
        self.csv = None if self.jsonl else csv.DictWriter(self.handle, fieldnames=columns, extrasaction="ignore")
        if self.csv:
            self.csv.writeheader()

    def write(self, row: dict) -> None:
        if self.jsonl:
            self.handle.write(json.dumps({k: row.get(k) for k in self.columns}) + "\n")
        else:
            self.csv.writerow(row)
        self.handle.flush()

    def close(self) -> None:
        if self.handle is not sys.stdout:
            self.handle.close()


def _analyzer(args: argparse.Namespace):
    from ..scorers import load_scorer
    from .face_quality import FaceQualityAnalyzer

    scorer = load_scorer(args.model, device=args.device, batch_size=args.batch_size)
    return FaceQualityAnalyzer(scorer, detector_weights=args.detector_weights, largest_face_only=args.largest_face_only,
                               min_face_size=args.min_face_size)


def run_score(args: argparse.Namespace) -> int:
    inputs = expand_inputs(args.paths)
    if not inputs:
        print("hf-fiqa score: no input files found", file=sys.stderr)
        return 2
    analyzer = _analyzer(args)
    writer = RowWriter(args.output, FACE_COLUMNS)
    failed = faces = no_face = 0
    try:
        for record in analyzer.iter_records(inputs, progress=not args.quiet, total=len(inputs)):
            failed += bool(record["error"])
            no_face += bool(not record["error"] and not record["faces"])
            faces += len(record["faces"])
            for row in record_rows(record):
                writer.write(row)
    finally:
        writer.close()
    print(f"{len(inputs)} inputs: {faces} faces scored, {no_face} without a face, {failed} unreadable", file=sys.stderr)
    return 1 if failed else 0


def run_video(args: argparse.Namespace) -> int:
    from .video import plot_quality_series, score_video

    analyzer = _analyzer(args)
    result = score_video(args.file, analyzer, every_n=args.every_n, target_fps=args.fps, max_frames=args.max_frames,
                         progress=not args.quiet)
    columns = ["frame_index", "time", "quality", "box", "detection_score", "num_faces"]
    writer = RowWriter(args.output, columns)
    try:
        for frame in result.frames:
            writer.write(vars(frame))
    finally:
        writer.close()
    if args.plot:
        plot_quality_series(result, args.plot)
    best = ", ".join(f"frame {f.frame_index} ({f.quality:.3f})" for f in result.best_frames(args.best))
    print(f"{len(result.frames)} frames sampled of {result.frames_decoded} decoded; best: {best or 'none'}", file=sys.stderr)
    if result.error:
        print(f"hf-fiqa video: {result.error}", file=sys.stderr)
        return 1
    return 0


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True,
                        help="model folder or Hub id (MANIQA, MagFace iResNet), or a baseline: "
                             "inter_eye_distance, face_size, detector_confidence, sharpness, random")
    parser.add_argument("--output", help="FILE.csv or FILE.jsonl (default: CSV on stdout)")
    parser.add_argument("--batch-size", type=int, default=16, help="faces per forward pass")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: the model's)")
    parser.add_argument("--detector-weights", default=None, help="YuNet ONNX file (else $HF_FIQA_DETECTOR_WEIGHTS, else the Hub)")
    parser.add_argument("--largest-face-only", action="store_true")
    parser.add_argument("--min-face-size", type=float, default=0.0, help="ignore faces smaller than this (px)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def register(subparsers: argparse._SubParsersAction) -> None:
    score = subparsers.add_parser("score", help="score every face in photos (files and folders, recursive)")
    score.add_argument("paths", nargs="+")
    _common(score)
    score.set_defaults(func=run_score)

    video = subparsers.add_parser("video", help="score the main face across a video's frames")
    video.add_argument("file")
    _common(video)
    video.add_argument("--every-n", type=int, default=None, help="score every n-th frame")
    video.add_argument("--fps", type=float, default=None, help="sample about this many frames per second")
    video.add_argument("--max-frames", type=int, default=None)
    video.add_argument("--best", type=int, default=5, help="how many best frames to report")
    video.add_argument("--plot", default=None, help="PNG of the quality series")
    video.set_defaults(func=run_video)
