"""Adding aligned face crops to any image dataset (YuNet detection + 5-point alignment).

Quality and recognition models see ArcFace-aligned crops, not photos, so every photo dataset
goes through this map once; ``datasets`` caches the result by fingerprint, so later calls
with the same arguments reuse it. Added columns:

* ``aligned_<size>`` (``Image``, PNG - lossless, so no new compression artefacts reach a
  quality model) - ``None`` when no face was found;
* ``face_found`` (bool) and ``face_error`` (``""``, ``"no face detected"`` or why the image
  could not be read) - a bad image marks its row instead of stopping the whole map;
* ``face_score``, ``face_box`` (x1, y1, x2, y2) and ``face_landmarks`` (5 x (x, y)) of the
  chosen face, in the coordinates of the EXIF-rotated photo.

The chosen face is the most confident (``select="score"``) or the largest (``"largest"``),
chosen and aligned by :class:`hf_fiqa.faces.FaceCropper` like everywhere else. The detector is
built once per process (worker processes build their own).
"""

from __future__ import annotations

import io
import logging
import os
from typing import Literal, Sequence

logger = logging.getLogger("hf_fiqa.data")

# Bump when the output of this map changes for the same inputs, to invalidate caches.
ALIGN_VERSION = 1
_CROPPERS: dict[tuple, object] = {}


def _cropper(weights: str | None, options: tuple, border: str):
    key = (os.getpid(), weights, options, border)
    cropper = _CROPPERS.get(key)
    if cropper is None:
        from ..faces import FaceCropper, YuNetDetector

        cropper = FaceCropper(YuNetDetector(weights, **dict(options)), border=border)
        _CROPPERS[key] = cropper
    return cropper


def aligned_features(base, sizes: Sequence[int]):
    from datasets import Image, Value

    from .common import list_feature

    features = base.copy()
    for s in sizes:
        features[f"aligned_{s}"] = Image()
    features["face_found"] = Value("bool")
    features["face_error"] = Value("string")
    features["face_score"] = Value("float32")
    features["face_box"] = list_feature(Value("float32"), length=4)
    features["face_landmarks"] = list_feature(list_feature(Value("float32"), length=2), length=5)
    return features


def _png(crop) -> dict:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(crop, "RGB").save(buf, format="PNG", compress_level=1)
    return {"bytes": buf.getvalue(), "path": None}


def _align_batch(batch: dict, *, image_column: str, sizes: list[int], weights: str | None, options: tuple,
                 select: str, border: str, cache_key: str) -> dict:
    """``cache_key`` is unused: it is in ``fn_kwargs`` so the cache fingerprint changes with
    the code version and the weights file."""
    import numpy as np

    from ..io import ImageReadError, load_image

    cropper = _cropper(weights, options, border)
    n = len(batch[image_column])
    out: dict[str, list] = {f"aligned_{s}": [None] * n for s in sizes}
    out.update({"face_found": [False] * n, "face_error": [""] * n, "face_score": [None] * n,
                "face_box": [None] * n, "face_landmarks": [None] * n})
    for i, value in enumerate(batch[image_column]):
        try:
            if value is None:
                raise ImageReadError("<missing>", "no image in this row")
            if isinstance(value, dict):  # Image(decode=False): {"bytes", "path"}
                source = value.get("bytes") or value.get("path")
                try:
                    rgb = load_image(source)
                except ImageReadError as exc:
                    raise ImageReadError(value.get("path") or source, exc.reason) from None
            else:
                rgb = load_image(value)
        except ImageReadError as exc:
            out["face_error"][i] = f"unreadable image {exc.source}: {exc.reason}"
            continue
        photo = cropper.crop_array(np.asarray(rgb), sizes, select="largest" if select == "largest" else "best")
        if not photo.faces:
            out["face_error"][i] = photo.error or photo.reason or "no face detected"
            continue
        face = photo.faces[0]
        for s in sizes:
            out[f"aligned_{s}"][i] = _png(photo.crops[s][0].crop)
        out["face_found"][i] = True
        out["face_score"][i] = float(face.score)
        out["face_box"][i] = [float(v) for v in face.box]
        out["face_landmarks"][i] = [[float(x), float(y)] for x, y in face.landmarks]
    return out


def align_dataset(
    ds,
    image_column: str = "image",
    sizes: Sequence[int] = (112,),
    num_proc: int | None = None,
    detector_weights: str | os.PathLike | None = None,
    *,
    select: Literal["score", "largest"] = "score",
    border: str = "constant",
    batch_size: int = 32,
    detector_options: dict | None = None,
):
    """Return ``ds`` with aligned crops and face columns added (see the module docstring).

    ``detector_weights`` is passed to ``YuNetDetector`` (``None``: its own lookup -
    ``$HF_FIQA_DETECTOR_WEIGHTS`` or the Hub cache); ``detector_options`` are its keyword
    options (``score_threshold``, ``fallback``, ...). Rows whose image cannot be read or holds
    no face are kept with ``face_found=False``; their count is logged.
    """
    from datasets import Image

    from ..faces.detection import resolve_yunet_weights

    if image_column not in ds.column_names:
        raise ValueError(f"dataset has no column {image_column!r} (columns: {ds.column_names})")
    if select not in ("score", "largest"):
        raise ValueError(f"select must be 'score' or 'largest', got {select!r}")
    sizes = [int(s) for s in dict.fromkeys(sizes)]
    # Resolve now: fails early with a clear message, and puts the weights' identity in the cache key.
    weights = str(resolve_yunet_weights(detector_weights))
    stat = os.stat(weights)
    options = tuple(sorted((detector_options or {}).items()))
    original = ds.features[image_column]
    undecoded = ds.cast_column(image_column, Image(decode=False))
    features = aligned_features(undecoded.features, sizes)
    result = undecoded.map(
        _align_batch,
        batched=True,
        batch_size=batch_size,
        features=features,
        fn_kwargs={
            "image_column": image_column,
            "sizes": sizes,
            "weights": weights,
            "options": options,
            "select": select,
            "border": border,
            "cache_key": f"v{ALIGN_VERSION}:{weights}:{stat.st_size}:{stat.st_mtime_ns}",
        },
        num_proc=num_proc,
        desc="detecting and aligning faces",
    )
    result = result.cast_column(image_column, original)
    missing = len(result) - sum(result["face_found"])
    if missing:
        logger.warning("%d of %d rows have no aligned face (see the face_error column)", missing, len(result))
    return result
