"""Graded synthetic degradations of face photos, for training signals and sanity benchmarks.

A quality model that cannot rank "slightly blurred" above "very blurred" versions of the same
photo is broken whatever its correlation on a benchmark, so these are monotone ladders:
severity 1 (mild) .. 5 (severe) per type. All work in 8-bit RGB through OpenCV, PIL and numpy.

=================  ==============================================  ============================
type               severities 1 .. 5                               how
=================  ==============================================  ============================
gaussian_blur      sigma 0.7, 1.2, 2.0, 3.0, 4.5 px per 112 px      ``cv2.GaussianBlur``; sigma
                   of the shorter side                              scales with image size
gaussian_noise     std 4, 8, 14, 22, 34 (8-bit levels)              i.i.d. per pixel and channel,
                                                                    numpy ``default_rng``
jpeg               quality 50, 30, 18, 10, 5                        PIL JPEG encoder, 4:2:0
downscale          factor 1.5, 2, 3, 4, 6                           ``cv2.resize`` INTER_AREA down,
                                                                    INTER_CUBIC back up
underexposure      -0.5, -1.0, -1.5, -2.0, -2.5 EV                  gain 2**EV in linear light
overexposure       +0.5, +1.0, +1.5, +2.0, +2.5 EV                  (sRGB ~ gamma 2.2), clipped;
                                                                    ``cv2.LUT``
occlusion          8, 15, 22, 30, 40 % of the image area            one flat-coloured rectangle
                                                                    (aspect 1:2 .. 2:1) centred in
                                                                    the middle 60 % of the image
misalignment       rotation 10, 20, 35, 55, 90 degrees, shift       ``cv2.warpAffine`` about the
                   2.5, 5, 8, 12, 16 % of the side, scale           centre, random sign and
                   1 +- 0.05 .. 0.25                                direction, reflected border
=================  ==============================================  ============================

The last two stand for what goes wrong in the wild rather than in the camera: hands, microphones
and sunglasses in front of the face, and landmarks a detector placed badly (a tilted, shifted or
wrongly scaled crop). On an aligned face crop they give a recognizer the failures that unaligned
photos give it.

Randomness (noise, occlusion, misalignment) comes from ``numpy.random.default_rng((seed, key,
type, severity))`` where ``key`` is the source row index, so results do not depend on
processing order, batch size or number of processes.
"""

from __future__ import annotations

import io
from typing import Sequence

import numpy as np

DEGRADATIONS = ("gaussian_blur", "gaussian_noise", "jpeg", "downscale", "underexposure", "overexposure",
                "occlusion", "misalignment")
# ClassLabel names of the ``degradation`` column; "none" marks kept originals (severity 0).
DEGRADATION_LABELS = ("none",) + DEGRADATIONS
SEVERITIES = (1, 2, 3, 4, 5)

BLUR_SIGMA_AT_112 = (0.7, 1.2, 2.0, 3.0, 4.5)
NOISE_STD = (4.0, 8.0, 14.0, 22.0, 34.0)
JPEG_QUALITY = (50, 30, 18, 10, 5)
DOWNSCALE_FACTOR = (1.5, 2.0, 3.0, 4.0, 6.0)
UNDEREXPOSURE_EV = (-0.5, -1.0, -1.5, -2.0, -2.5)
OVEREXPOSURE_EV = (0.5, 1.0, 1.5, 2.0, 2.5)
OCCLUDED_FRACTION = (0.08, 0.15, 0.22, 0.30, 0.40)
MISALIGN_DEGREES = (10.0, 20.0, 35.0, 55.0, 90.0)
MISALIGN_SHIFT = (0.025, 0.05, 0.08, 0.12, 0.16)
MISALIGN_SCALE = (0.05, 0.10, 0.15, 0.20, 0.25)
_GAMMA = 2.2


def degradation_parameters() -> dict[str, dict[int, float]]:
    """``{type: {severity: parameter}}`` - the table above, for cards and reports."""
    table = {
        "gaussian_blur": BLUR_SIGMA_AT_112,
        "gaussian_noise": NOISE_STD,
        "jpeg": JPEG_QUALITY,
        "downscale": DOWNSCALE_FACTOR,
        "underexposure": UNDEREXPOSURE_EV,
        "overexposure": OVEREXPOSURE_EV,
        "occlusion": OCCLUDED_FRACTION,
        "misalignment": MISALIGN_DEGREES,
    }
    return {name: {s: values[s - 1] for s in SEVERITIES} for name, values in table.items()}


def _exposure_lut(ev: float) -> np.ndarray:
    x = np.arange(256, dtype=np.float64) / 255.0
    linear = np.power(x, _GAMMA) * (2.0**ev)
    out = np.power(np.clip(linear, 0.0, 1.0), 1.0 / _GAMMA)
    return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)


def _check(kind: str, severity: int) -> None:
    if kind not in DEGRADATIONS:
        raise ValueError(f"unknown degradation {kind!r}; choose from {DEGRADATIONS}")
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}, got {severity!r}")


def degrade_array(rgb: np.ndarray, kind: str, severity: int, *, seed: int = 0, key: int = 0) -> np.ndarray:
    """Apply one degradation to an HxWx3 uint8 RGB array (returns a new array)."""
    import cv2

    _check(kind, severity)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 uint8 RGB array, got {rgb.dtype} {rgb.shape}")
    i = severity - 1
    h, w = rgb.shape[:2]
    rng = np.random.default_rng((seed, key, DEGRADATIONS.index(kind), severity))
    if kind == "gaussian_blur":
        sigma = BLUR_SIGMA_AT_112[i] * min(h, w) / 112.0
        return cv2.GaussianBlur(rgb, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT_101)
    if kind == "gaussian_noise":
        noise = rng.normal(0.0, NOISE_STD[i], size=rgb.shape)
        return np.clip(np.rint(rgb.astype(np.float64) + noise), 0, 255).astype(np.uint8)
    if kind == "jpeg":
        return np.asarray(_jpeg_image(rgb, JPEG_QUALITY[i]).convert("RGB"))
    if kind == "downscale":
        f = DOWNSCALE_FACTOR[i]
        small = cv2.resize(rgb, (max(1, round(w / f)), max(1, round(h / f))), interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    if kind == "occlusion":
        return _occlude(rgb, OCCLUDED_FRACTION[i], rng)
    if kind == "misalignment":
        angle = MISALIGN_DEGREES[i] * rng.choice((-1.0, 1.0))
        scale = 1.0 + MISALIGN_SCALE[i] * rng.choice((-1.0, 1.0))
        direction = rng.uniform(0.0, 2.0 * np.pi)
        matrix = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), angle, scale)
        matrix[:, 2] += MISALIGN_SHIFT[i] * min(h, w) * np.array([np.cos(direction), np.sin(direction)])
        return cv2.warpAffine(rgb, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    ev = UNDEREXPOSURE_EV[i] if kind == "underexposure" else OVEREXPOSURE_EV[i]
    return cv2.LUT(rgb, _exposure_lut(ev))


def _occlude(rgb: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    h, w = rgb.shape[:2]
    aspect = np.exp(rng.uniform(np.log(0.5), np.log(2.0)))
    rh = int(np.clip(round(np.sqrt(fraction * h * w / aspect)), 1, h))
    rw = int(np.clip(round(fraction * h * w / rh), 1, w))
    cy, cx = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w
    top, left = int(np.clip(round(cy - rh / 2), 0, h - rh)), int(np.clip(round(cx - rw / 2), 0, w - rw))
    out = rgb.copy()
    out[top:top + rh, left:left + rw] = rng.integers(0, 256, size=3, dtype=np.uint8)
    return out


def _jpeg_bytes(rgb: np.ndarray, quality: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, format="JPEG", quality=int(quality), subsampling=2)
    return buf.getvalue()


def _jpeg_image(rgb: np.ndarray, quality: int):
    from PIL import Image

    with Image.open(io.BytesIO(_jpeg_bytes(rgb, quality))) as img:
        img.load()
        return img.copy()


def degrade(image, kind: str, severity: int, *, seed: int = 0, key: int = 0):
    """Degrade any image input (path, bytes, PIL, array) and return an RGB PIL image."""
    from PIL import Image

    from ..io import load_image

    rgb = np.asarray(load_image(image))
    return Image.fromarray(degrade_array(rgb, kind, severity, seed=seed, key=key), "RGB")


def _encode(rgb: np.ndarray, kind: str, severity: int, seed: int, key: int) -> dict:
    """Degrade and encode for an ``Image`` column: JPEG rows keep the exact JPEG bytes
    that carry the artefacts; everything else is stored losslessly as PNG."""
    from PIL import Image

    if kind == "jpeg":
        return {"bytes": _jpeg_bytes(rgb, JPEG_QUALITY[severity - 1]), "path": None}
    out = degrade_array(rgb, kind, severity, seed=seed, key=key) if kind != "none" else rgb
    buf = io.BytesIO()
    Image.fromarray(out, "RGB").save(buf, format="PNG", compress_level=1)
    return {"bytes": buf.getvalue(), "path": None}


def _degrade_batch(batch: dict, indices: list[int], *, image_column: str, plan: list[tuple[str, int]],
                   seed: int, keep_original: bool) -> dict:
    from ..io import load_image

    out: dict[str, list] = {"image": [], "source_index": [], "degradation": [], "severity": []}
    for image, index in zip(batch[image_column], indices):
        rgb = np.asarray(load_image(image))
        jobs = ([("none", 0)] if keep_original else []) + plan
        for kind, severity in jobs:
            out["image"].append(_encode(rgb, kind, severity, seed, index))
            out["source_index"].append(index)
            out["degradation"].append(DEGRADATION_LABELS.index(kind))
            out["severity"].append(severity)
    return out


def degraded_features():
    from datasets import ClassLabel, Features, Image, Value

    return Features(
        {
            "image": Image(),
            "source_index": Value("int64"),
            "degradation": ClassLabel(names=list(DEGRADATION_LABELS)),
            "severity": Value("int8"),
        }
    )


def degrade_dataset(
    ds,
    types: Sequence[str] = DEGRADATIONS,
    severities: Sequence[int] = SEVERITIES,
    seed: int = 0,
    *,
    image_column: str = "image",
    keep_original: bool = False,
    num_proc: int | None = None,
    batch_size: int = 16,
):
    """Expand every image of ``ds`` into ``len(types) * len(severities)`` degraded rows.

    Columns: ``image``, ``source_index`` (row in ``ds``), ``degradation`` (``ClassLabel`` of
    ``"none"`` + the types) and ``severity`` (0 for kept originals). Other columns of ``ds``
    are dropped - join back through ``source_index``. ``datasets`` caches the result by
    fingerprint, so repeating a call with the same arguments is free.
    """
    plan = [(kind, int(s)) for kind in types for s in severities]
    for kind, s in plan:
        _check(kind, s)
    if image_column not in ds.column_names:
        raise ValueError(f"dataset has no column {image_column!r} (columns: {ds.column_names})")
    return ds.map(
        _degrade_batch,
        batched=True,
        batch_size=batch_size,
        with_indices=True,
        remove_columns=ds.column_names,
        features=degraded_features(),
        fn_kwargs={"image_column": image_column, "plan": plan, "seed": int(seed), "keep_original": keep_original},
        num_proc=num_proc,
        desc="degrading images",
    )
