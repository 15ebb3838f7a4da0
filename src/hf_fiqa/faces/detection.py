"""Face detection: find faces and their 5 landmarks in a photo.

Public API
----------
``FaceDetector``
    The protocol the face pipeline depends on: ``detect(image) -> list[DetectedFace]``, faces
    in the photo's own pixel coordinates (after EXIF rotation), best score first, boxes
    clipped to the photo, an empty list when there is no face.
``ScaledFaceDetector``
    Base class holding everything that is not model-specific: decoding the input, detecting
    at a bounded working size (huge photos are shrunk, tiny ones enlarged) and mapping boxes
    and landmarks back, the low-confidence fallback, clipping and sorting. A new detector is
    one subclass implementing ``_detect_rgb``.
``YuNetDetector``
    OpenCV's ``cv2.FaceDetectorYN`` (YuNet, MIT). Built once and reused; ``detect`` is safe to
    call from several threads (calls on one instance are serialised, because OpenCV detector
    objects are not thread-safe). For parallel throughput make one detector per worker; an
    instance pickles (the OpenCV object is rebuilt on unpickling), so it can be handed to
    ``multiprocessing`` / DataLoader workers.
``resolve_yunet_weights(path=None)``
    Where the YuNet ONNX file comes from: explicit path, then ``$HF_FIQA_DETECTOR_WEIGHTS``,
    then the Hugging Face Hub (``opencv/face_detection_yunet``; works offline from a populated
    HF cache). Raises :class:`DetectorWeightsNotFoundError` listing all three otherwise.

Typical use::

    detector = YuNetDetector()            # once
    faces = detector.detect(rgb_array)    # per photo
    crops = align_faces(rgb_array, faces, sizes=(112, 224))

Why the fallback: at YuNet's usual threshold 0.6 a few real photos (profile views, blur,
heavy make-up) have no detection at all, and a quality pipeline that silently drops them
biases its statistics toward good photos. Retrying at 0.3, then on a 2x enlarged photo,
recovered all such misses in the project's measurements (see ``REFERENCE.md``); the low
score stays on the returned face, so downstream code can still tell these faces apart.
"""

from __future__ import annotations

import os
import threading
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from ..io import ImageInput
from ._rgb import as_rgb_array
from .types import DetectedFace

WEIGHTS_ENV = "HF_FIQA_DETECTOR_WEIGHTS"
YUNET_REPO_ID = "opencv/face_detection_yunet"
YUNET_FILENAME = "face_detection_yunet_2023mar.onnx"


class DetectorWeightsNotFoundError(FileNotFoundError):
    """No detector weights at any of the places looked at; the message lists them."""


def resolve_yunet_weights(path: str | os.PathLike | None = None) -> Path:
    """Return the path of the YuNet ONNX weights.

    Looked up in this order:

    1. ``path`` when given;
    2. the environment variable ``HF_FIQA_DETECTOR_WEIGHTS`` when set;
    3. ``huggingface_hub.hf_hub_download("opencv/face_detection_yunet",
       "face_detection_yunet_2023mar.onnx")``, which downloads once and afterwards (or with
       ``HF_HUB_OFFLINE=1``) is served from the local HF cache.

    An explicit path or environment variable that names a missing file is an error rather
    than a reason to fall through: silently using other weights than the ones asked for would
    hide a misconfiguration. Every failure raises :class:`DetectorWeightsNotFoundError`
    stating what was tried.
    """
    order = (
        f"(1) the `path` argument, (2) ${WEIGHTS_ENV}, "
        f"(3) the Hugging Face Hub / local HF cache: {YUNET_REPO_ID}/{YUNET_FILENAME}"
    )
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise DetectorWeightsNotFoundError(
                f"YuNet weights not found at the given path {str(p)!r}; looked up in order {order}"
            )
        return p
    env = os.environ.get(WEIGHTS_ENV)
    if env:
        p = Path(env).expanduser()
        if not p.is_file():
            raise DetectorWeightsNotFoundError(
                f"${WEIGHTS_ENV} is set to {env!r} but no file is there; looked up in order {order}"
            )
        return p
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(YUNET_REPO_ID, YUNET_FILENAME))
    except Exception as exc:  # offline + empty cache, no network, hub errors: all mean "not found"
        raise DetectorWeightsNotFoundError(
            "YuNet face-detector weights not found. Tried: (1) no `path` argument given; "
            f"(2) ${WEIGHTS_ENV} not set; (3) Hugging Face Hub {YUNET_REPO_ID}/{YUNET_FILENAME} "
            f"failed: {type(exc).__name__}: {str(exc).rstrip('.')}. Pass a path, set ${WEIGHTS_ENV} to the ONNX "
            "file, or download it once with network access (it is then cached)."
        ) from exc


@runtime_checkable
class FaceDetector(Protocol):
    """What the face pipeline needs from a detector."""

    def detect(self, image: ImageInput) -> list[DetectedFace]:
        """Faces in ``image`` (RGB array, PIL image, path or bytes), best score first."""
        ...


def _resize(rgb: np.ndarray, scale: float) -> tuple[np.ndarray, float, float]:
    """Resize by ``scale``; return the image and the exact per-axis factors after rounding."""
    h, w = rgb.shape[:2]
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    if (nw, nh) == (w, h):
        return rgb, 1.0, 1.0
    # INTER_AREA when shrinking: plain bilinear aliases badly at 4-5x reduction (huge photos).
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(rgb, (nw, nh), interpolation=interp), nw / w, nh / h


class ScaledFaceDetector(ABC):
    """Shared logic of every detector; subclasses only run their model on one RGB array.

    Parameters
    ----------
    score_threshold:
        Faces below this confidence are dropped (0.6, YuNet's usual operating point).
    fallback:
        When nothing reaches ``score_threshold``: accept faces down to ``fallback_threshold``,
        and if there are still none, run once more on the photo enlarged 2x.
    max_side:
        Photos whose longer side exceeds this are detected on a copy shrunk to it; bounds time
        and memory on 24-MP photos (faces in them are large enough to survive).
    min_side:
        Photos whose longer side is below this are detected on a copy enlarged to it; YuNet
        misses a fifth of the faces in 64-px photos at native size and almost none at 320.
    fallback_min_size:
        Faces accepted by the fallback (score below ``score_threshold``) must be at least this
        many pixels on their shorter side, measured at the working size the detector saw.
        On noise and texture the model fires at 0.3-0.4 on specks of 2-6 pixels; the faces
        the fallback exists for (blurred, turned, made-up) are large, low confidence being
        caused by appearance rather than size.
    """

    name: str = "detector"

    def __init__(
        self,
        *,
        score_threshold: float = 0.6,
        fallback: bool = True,
        fallback_threshold: float = 0.3,
        max_side: int = 1280,
        min_side: int = 320,
        fallback_min_size: float = 32.0,
    ) -> None:
        if not 0.0 <= fallback_threshold <= score_threshold <= 1.0:
            raise ValueError(
                f"need 0 <= fallback_threshold <= score_threshold <= 1, got {fallback_threshold}, {score_threshold}"
            )
        if not 0 < min_side <= max_side:
            raise ValueError(f"need 0 < min_side <= max_side, got {min_side}, {max_side}")
        self.score_threshold = float(score_threshold)
        self.fallback = bool(fallback)
        self.fallback_threshold = float(fallback_threshold)
        self.max_side = int(max_side)
        self.min_side = int(min_side)
        self.fallback_min_size = float(fallback_min_size)

    @abstractmethod
    def _detect_rgb(self, rgb: np.ndarray, min_score: float) -> np.ndarray:
        """Run the model on ``rgb`` ((H, W, 3) uint8) and return every face scoring >= ``min_score``.

        Returns an ``(N, 15)`` float array in ``rgb``'s pixel coordinates: x1, y1, x2, y2, five
        landmarks (x, y) in ArcFace template order, score. Unclipped, in any order.
        """

    def working_scale(self, width: int, height: int) -> float:
        """The factor a ``width`` x ``height`` photo is resized by before detection."""
        long_side = max(width, height)
        if long_side > self.max_side:
            return self.max_side / long_side
        if long_side < self.min_side:
            return self.min_side / long_side
        return 1.0

    def _detect_scaled(self, rgb: np.ndarray, scale: float, min_score: float) -> np.ndarray:
        """Detect on ``rgb`` resized by ``scale``; rows mapped back to ``rgb`` coordinates."""
        work, sx, sy = _resize(rgb, scale)
        rows = np.array(self._detect_rgb(work, min_score), dtype=np.float64).reshape(-1, 15)
        if sx != 1.0 or sy != 1.0:
            # cv2.resize aligns pixel centres: x_work = (x + 0.5) * sx - 0.5, inverted here.
            rows[:, 0:14:2] = (rows[:, 0:14:2] + 0.5) / sx - 0.5
            rows[:, 1:14:2] = (rows[:, 1:14:2] + 0.5) / sy - 0.5
        return rows

    def detect(self, image: ImageInput) -> list[DetectedFace]:
        """Faces in ``image``, best score first; ``[]`` when there is none.

        ``image`` is an RGB uint8 array (used as is), a PIL image, a path or encoded bytes
        (decoded with EXIF rotation by :func:`hf_fiqa.io.load_image`). Coordinates refer to
        that decoded RGB image, which is what :func:`hf_fiqa.faces.align_face` warps.
        """
        rgb = as_rgb_array(image)
        h, w = rgb.shape[:2]
        scale = self.working_scale(w, h)
        floor = self.fallback_threshold if self.fallback else self.score_threshold
        # One pass at the lowest threshold in use: greedy NMS never lets a lower-scored box
        # suppress a higher one, so filtering to score_threshold afterwards gives exactly what
        # a pass at score_threshold would, and the first fallback step costs nothing.
        rows = self._detect_scaled(rgb, scale, floor)
        kept = rows[rows[:, 14] >= self.score_threshold]
        if len(kept) == 0 and self.fallback:
            kept = self._fallback_rows(rows, scale)
            if len(kept) == 0:
                kept = self._fallback_rows(self._detect_scaled(rgb, 2.0 * scale, self.fallback_threshold), scale)
        return _to_faces(kept, w, h)

    def _fallback_rows(self, rows: np.ndarray, scale: float) -> np.ndarray:
        """Rows acceptable to the fallback: score >= fallback_threshold and not specks."""
        side = np.minimum(rows[:, 2] - rows[:, 0], rows[:, 3] - rows[:, 1]) * scale
        return rows[(rows[:, 14] >= self.fallback_threshold) & (side >= self.fallback_min_size)]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(score_threshold={self.score_threshold}, fallback={self.fallback}, "
            f"fallback_threshold={self.fallback_threshold}, max_side={self.max_side}, min_side={self.min_side}, "
            f"fallback_min_size={self.fallback_min_size})"
        )


def _to_faces(rows: np.ndarray, width: int, height: int) -> list[DetectedFace]:
    """Clip boxes to the photo, drop boxes that clip to nothing, sort by score (best first)."""
    faces: list[DetectedFace] = []
    for row in rows[np.argsort(-rows[:, 14], kind="stable")]:
        box = np.array(
            [
                np.clip(row[0], 0, width),
                np.clip(row[1], 0, height),
                np.clip(row[2], 0, width),
                np.clip(row[3], 0, height),
            ],
            dtype=np.float32,
        )
        if box[2] - box[0] <= 0 or box[3] - box[1] <= 0:
            continue
        # Landmarks are left unclipped: a point just outside the photo is still the right point
        # for alignment, which fills the outside according to its border mode.
        landmarks = row[4:14].reshape(5, 2).astype(np.float32)
        faces.append(DetectedFace(box=box, landmarks=landmarks, score=float(np.clip(row[14], 0.0, 1.0))))
    return faces


class YuNetDetector(ScaledFaceDetector):
    """YuNet through ``cv2.FaceDetectorYN``; see :class:`ScaledFaceDetector` for the options.

    ``weights`` goes through :func:`resolve_yunet_weights`. ``nms_threshold`` and ``top_k`` are
    YuNet's own (IoU for non-maximum suppression, candidates kept before it).
    """

    name = "yunet"

    def __init__(
        self,
        weights: str | os.PathLike | None = None,
        *,
        score_threshold: float = 0.6,
        fallback: bool = True,
        fallback_threshold: float = 0.3,
        max_side: int = 1280,
        min_side: int = 320,
        fallback_min_size: float = 32.0,
        nms_threshold: float = 0.3,
        top_k: int = 5000,
    ) -> None:
        super().__init__(
            score_threshold=score_threshold,
            fallback=fallback,
            fallback_threshold=fallback_threshold,
            max_side=max_side,
            min_side=min_side,
            fallback_min_size=fallback_min_size,
        )
        self.weights = resolve_yunet_weights(weights)
        self.nms_threshold = float(nms_threshold)
        self.top_k = int(top_k)
        self._lock = threading.Lock()
        self._model = self._build()

    def __getstate__(self) -> dict:
        """Pickled without the OpenCV object (it cannot be): a DataLoader worker process rebuilds its own."""
        return {k: v for k, v in self.__dict__.items() if k not in ("_lock", "_model")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._model = self._build()

    def _build(self) -> "cv2.FaceDetectorYN":
        try:
            return cv2.FaceDetectorYN.create(
                str(self.weights), "", (320, 320), self.fallback_threshold, self.nms_threshold, self.top_k
            )
        except cv2.error as exc:
            raise ValueError(f"cannot load YuNet weights {str(self.weights)!r}: {exc}") from None

    def _detect_rgb(self, rgb: np.ndarray, min_score: float) -> np.ndarray:
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        h, w = bgr.shape[:2]
        with self._lock:  # setInputSize + detect mutate the shared OpenCV object
            self._model.setInputSize((w, h))
            self._model.setScoreThreshold(float(min_score))
            _, found = self._model.detect(bgr)
        if found is None:
            return np.zeros((0, 15))
        rows = found[:, :15].astype(np.float64)
        rows[:, 2] += rows[:, 0]  # x, y, w, h -> x1, y1, x2, y2
        rows[:, 3] += rows[:, 1]
        return rows

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        del state["_model"], state["_lock"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._model = self._build()
