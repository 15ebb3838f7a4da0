"""Face quality over a video: sample frames, follow the main face, score it, pick the best frames.

Frames are decoded with PyAV (FFmpeg). The main face is the largest face of the first sampled frame that has
one; in later frames it is the detection overlapping its last box most (IoU tracking). When it is lost for
``max_lost`` sampled frames the track restarts on the largest face in view. A video that breaks part-way
(truncated file, corrupt packets) returns the frames scored so far together with an ``error``. With an analyzer
built with ``components=True`` every scored frame also carries the main face's quality components (a series per
component over time: which frames have closed eyes, a turned head, a face leaving the picture).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..components import as_columns, as_records, concerns
from ..faces.cropper import face_area, select_faces
from ..faces.types import DetectedFace
from ..scorers import crop_spec
from .face_quality import FaceQualityAnalyzer, scorer_name


@dataclass
class FrameQuality:
    frame_index: int
    time: float
    quality: float | None = None
    box: list[float] | None = None
    detection_score: float | None = None
    num_faces: int = 0
    components: dict[str, dict] | None = None  # the main face's, as hf_fiqa.components.as_records
    concerns: list[str] | None = None

    def row(self) -> dict[str, Any]:
        """One output row: the frame's fields, and with components their values as the columns of ``score``."""
        row = {k: v for k, v in vars(self).items() if k not in ("components", "concerns")}
        if self.components is not None:
            row.update(as_columns(self.components, self.concerns or []))
        return row


@dataclass
class VideoQualityResult:
    input: str
    fps: float | None
    frames: list[FrameQuality] = field(default_factory=list)
    frames_decoded: int = 0
    error: str | None = None
    non_finite: list[int] = field(default_factory=list)  # frames whose quality came out NaN/inf

    def best_frames(self, k: int = 5) -> list[FrameQuality]:
        """The ``k`` sampled frames whose main face scored highest."""
        scored = [f for f in self.frames if f.quality is not None]
        return sorted(scored, key=lambda f: -f.quality)[:k]

    def to_dict(self, best: int = 5) -> dict[str, Any]:
        return {"input": self.input, "fps": self.fps, "frames_decoded": self.frames_decoded, "error": self.error,
                "frames": [vars(f) for f in self.frames], "best_frames": [vars(f) for f in self.best_frames(best)]}

    def component_series(self) -> dict[str, np.ndarray]:
        """``{component: (frames,) 0-100 values}`` of the main face, NaN where the frame had none or it could not
        be computed; empty without components."""
        names = next((list(f.components) for f in self.frames if f.components), [])
        return {name: np.array([np.nan if not f.components or f.components[name]["component"] is None
                                else float(f.components[name]["component"]) for f in self.frames])
                for name in names}


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two x1, y1, x2, y2 boxes."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class MainFaceTracker:
    """Keeps following one face across frames by box overlap."""

    def __init__(self, min_iou: float = 0.3, max_lost: int = 5):
        self.min_iou, self.max_lost = min_iou, max_lost
        self.box: np.ndarray | None = None
        self.lost = 0

    def update(self, faces: list[DetectedFace]) -> DetectedFace | None:
        if self.box is not None and faces:
            overlaps = [iou(self.box, f.box) for f in faces]
            best = int(np.argmax(overlaps))
            if overlaps[best] >= self.min_iou:
                self.box, self.lost = faces[best].box, 0
                return faces[best]
        if self.box is not None:
            self.lost += 1
            if self.lost <= self.max_lost:
                return None
        if not faces:
            return None
        largest = max(faces, key=face_area)
        self.box, self.lost = largest.box, 0
        return largest


def score_video(path: str | Path, analyzer: FaceQualityAnalyzer, every_n: int | None = None,
                target_fps: float | None = None, max_frames: int | None = None, batch_frames: int = 32,
                progress: bool = False) -> VideoQualityResult:
    """Score the main face of sampled frames of ``path``.

    Sampling: every ``every_n``-th frame, or as close to ``target_fps`` as the video's frame rate allows
    (default: every frame). ``max_frames`` caps the number of sampled frames.
    """
    try:
        import av
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise ImportError("video scoring needs PyAV: pip install 'hf-fiqa[video]'") from exc

    result = VideoQualityResult(input=str(path), fps=None)
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as exc:
        result.error = f"cannot open video {path}: {exc}"
        return result
    tracker = MainFaceTracker()
    spec = crop_spec(analyzer.scorer)
    pending: list[tuple[FrameQuality, Any]] = []
    with container:
        if not container.streams.video:
            result.error = f"{path} has no video stream"
            return result
        stream = container.streams.video[0]
        fps = float(stream.average_rate) if stream.average_rate else None
        result.fps = fps
        step = every_n or (max(1, round(fps / target_fps)) if (target_fps and fps) else 1)
        total = stream.frames // step if stream.frames else None
        bar = tqdm(total=min(total, max_frames) if (total and max_frames) else total, unit="frame",
                   disable=not progress, desc=f"scoring {Path(path).name}")
        stopped_early = False
        last_time: float | None = None
        try:
            for index, frame in enumerate(container.decode(stream)):
                result.frames_decoded = index + 1
                if frame.time is not None:
                    last_time = float(frame.time)
                if index % step:
                    continue
                rgb = frame.to_ndarray(format="rgb24")
                time = float(frame.time) if frame.time is not None else (index / fps if fps else float(index))
                record = FrameQuality(frame_index=index, time=round(time, 4))
                faces = analyzer.cropper.detector.detect(rgb)
                record.num_faces = len(faces)
                face = tracker.update(select_faces(faces, "all", analyzer.min_face_size)[0])
                if face is not None:
                    record.box = [round(float(v), 2) for v in face.box]
                    record.detection_score = round(float(face.score), 4)
                    pending.append((record, analyzer.cropper.align(rgb, [face], [spec])[spec][0]))
                    if analyzer.components is not None:
                        results = analyzer.components(rgb, [face], faces)[0]
                        record.components, record.concerns = as_records(results), concerns(results)
                result.frames.append(record)
                bar.update(1)
                if len(pending) >= batch_frames:
                    _score_pending(analyzer, pending, result)
                if max_frames and len(result.frames) >= max_frames:
                    stopped_early = True
                    break
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            result.error = f"video {path} broke off after {result.frames_decoded} frames: {type(exc).__name__}: {exc}"
        finally:
            bar.close()
        if result.error is None and not stopped_early and result.frames_decoded:
            short = _ended_early(container, stream, result.frames_decoded, last_time, fps)
            if short:
                result.error = f"video {path} broke off after {result.frames_decoded} frames: {short} (truncated file?)"
    try:
        _score_pending(analyzer, pending, result)
    finally:
        if result.non_finite:
            note = (f"non-finite quality from model {scorer_name(analyzer.scorer)} for "
                    f"{len(result.non_finite)} frame(s) of {path} (frames {result.non_finite[:10]})")
            result.error = f"{result.error}; {note}" if result.error else note
    if result.frames_decoded == 0 and result.error is None:
        result.error = f"no frame could be decoded from {path}"
    return result


def _ended_early(container: Any, stream: Any, decoded: int, last_time: float | None, fps: float | None) -> str:
    """Why a video that decoded without an error still ended before its declared length ('' when it did not).

    The declared length is the stream's frame count, else its duration, else the container's duration; a file
    cut short (truncated MKV/MP4/AVI ...) decodes fewer frames, or stops earlier, than that.
    """
    frame_step = 1.0 / fps if fps else 0.0
    declared_frames = int(stream.frames or 0)
    if declared_frames > 1 and decoded < declared_frames - 1:
        return f"{decoded} of {declared_frames} declared frames decoded"
    duration = None
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = float(container.duration) / 1_000_000  # av.time_base
    if duration and duration > 0:
        start = float(stream.start_time * stream.time_base) if (stream.start_time is not None and stream.time_base) else 0.0
        reached = (last_time - start + frame_step) if last_time is not None else (decoded * frame_step if fps else None)
        if reached is not None and reached < 0.9 * duration - 2 * frame_step:
            return f"decoding stopped at {reached:.2f} s of a declared {duration:.2f} s"
    return ""


def _score_pending(analyzer: FaceQualityAnalyzer, pending: list, result: "VideoQualityResult | None" = None) -> None:
    if not pending:
        return
    try:
        scores = analyzer.scorer.score([crop for _, crop in pending])
        for (record, _), quality in zip(pending, scores):
            if np.isfinite(quality):
                record.quality = float(quality)
            elif result is not None:
                result.non_finite.append(record.frame_index)
    finally:
        pending.clear()


def plot_quality_series(result: VideoQualityResult, path: str | Path, best: int = 5) -> Path:
    """Save a PNG of main-face quality over time, best frames marked; with components, a second panel draws the
    series of every component that fell below 50 in some frame (up to 8, lowest first)."""
    from matplotlib.figure import Figure

    series = result.component_series()
    low = sorted((name for name, v in series.items() if np.nanmin(v, initial=100.0) < 50),
                 key=lambda name: np.nanmin(series[name], initial=100.0))[:8]
    fig = Figure(figsize=(9, 6 if low else 3.5), dpi=120)
    ax = fig.add_subplot(2, 1, 1) if low else fig.add_subplot()
    times = [f.time for f in result.frames]
    qualities = [np.nan if f.quality is None else f.quality for f in result.frames]
    ax.plot(times, qualities, marker=".", linewidth=1, label="main face quality")
    top = result.best_frames(best)
    ax.scatter([f.time for f in top], [f.quality for f in top], color="tab:red", zorder=3, label=f"best {len(top)} frames")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("quality")
    title = Path(result.input).name + (" (incomplete: " + result.error.split(":")[0] + ")" if result.error else "")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    if low:
        below = fig.add_subplot(2, 1, 2, sharex=ax)
        for name in low:
            below.plot(times, series[name], marker=".", linewidth=1, label=name)
        below.axhline(50, color="grey", linewidth=0.8, linestyle="--")
        below.set_ylim(-2, 102)
        below.set_xlabel("time (s)")
        below.set_ylabel("component (0-100)")
        below.set_title("components that fell below 50")
        below.grid(alpha=0.3)
        below.legend(loc="best", fontsize="small", ncol=2)
    fig.tight_layout()
    from ..atomic import save_figure

    return save_figure(fig, path)
