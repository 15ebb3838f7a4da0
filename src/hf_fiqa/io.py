"""Reading images from whatever users hand us, with errors that name the input.

Every entry point (image processor, face pipeline, dataset loaders) goes through
:func:`load_image`, so odd files are handled the same way everywhere: EXIF orientation is
applied, palette/greyscale/CMYK/RGBA/16-bit images become 8-bit RGB, and anything PIL cannot
decode raises :class:`ImageReadError` carrying the offending path.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

ImageInput = Union[str, os.PathLike, bytes, Image.Image, np.ndarray]

# File suffixes that folder scans treat as images (every format Pillow decodes by default that
# photo collections use). One list: the embed job, the score command and the dataset loaders agree.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm", ".pgm", ".pbm"})

# Decompression-bomb guard: PIL's default warns at ~89 MP; we refuse beyond this many pixels.
MAX_PIXELS = 20_000 * 20_000


class ImageReadError(ValueError):
    """An input could not be read as an image. ``source`` names it."""

    def __init__(self, source: object, reason: str):
        self.source = describe(source)
        self.reason = reason
        super().__init__(f"cannot read image {self.source}: {reason}")


def describe(source: object) -> str:
    """A short human name for an input, used in error messages and result records."""
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    if isinstance(source, Image.Image):
        return f"<PIL.Image {source.mode} {source.size[0]}x{source.size[1]}>"
    if isinstance(source, np.ndarray):
        return f"<ndarray {source.dtype} {tuple(source.shape)}>"
    if isinstance(source, (bytes, bytearray)):
        return f"<{len(source)} bytes>"
    return repr(source)[:80]


def _to_rgb8(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB, scaling high bit depths rather than clipping them."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr = np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        hi = 1.0 if arr.max() <= 1.0 else 255.0
        return Image.fromarray(np.clip(arr / hi * 255 + 0.5, 0, 255).astype(np.uint8), "L").convert("RGB")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # Composite on white: transparent regions of a face cut-out should not read as black.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if img.mode != "RGB":
        return img.convert("RGB")
    return img


def array_to_image(arr: np.ndarray, source: object = None) -> Image.Image:
    """Wrap an HxW, HxWx1, HxWx3 or HxWx4 array (uint8, uint16 or float in [0,1]) as RGB."""
    src = source if source is not None else arr
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ImageReadError(src, f"expected an HxW or HxWxC (C in 1,3,4) array, got shape {arr.shape}")
    if arr.size == 0:
        raise ImageReadError(src, "empty array")
    if arr.dtype == np.uint16:
        arr = (arr.astype(np.float32) / 65535.0 * 255.0 + 0.5).astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise ImageReadError(src, "array holds NaN or inf")
        arr = (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    elif arr.dtype != np.uint8:
        raise ImageReadError(src, f"unsupported dtype {arr.dtype}")
    mode = "L" if arr.ndim == 2 else ("RGB" if arr.shape[2] == 3 else "RGBA")
    return _to_rgb8(Image.fromarray(np.ascontiguousarray(arr), mode))


def load_image(source: ImageInput) -> Image.Image:
    """Return ``source`` as an 8-bit RGB PIL image with EXIF rotation applied.

    Accepts a path, raw encoded bytes, a PIL image or a numpy array (RGB channel order).
    """
    if isinstance(source, Image.Image):
        return _to_rgb8(ImageOps.exif_transpose(source) or source)
    if isinstance(source, np.ndarray):
        return array_to_image(source)
    if isinstance(source, (bytes, bytearray)):
        fp: object = io.BytesIO(source)
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise ImageReadError(source, "no such file" if not path.exists() else "not a regular file")
        if path.stat().st_size == 0:
            raise ImageReadError(source, "file is empty (0 bytes)")
        fp = path
    else:
        raise ImageReadError(source, f"unsupported input type {type(source).__name__}")
    try:
        with Image.open(fp) as img:
            if img.size[0] * img.size[1] > MAX_PIXELS:
                raise ImageReadError(source, f"image too large ({img.size[0]}x{img.size[1]})")
            if img.size[0] == 0 or img.size[1] == 0:
                raise ImageReadError(source, "image has zero size")
            img.load()  # force full decode here so truncation surfaces now, not later
            img = ImageOps.exif_transpose(img) or img
            return _to_rgb8(img)
    except ImageReadError:
        raise
    except UnidentifiedImageError:
        raise ImageReadError(source, "not a recognised image format") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageReadError(source, f"{type(exc).__name__}: {exc}") from None
