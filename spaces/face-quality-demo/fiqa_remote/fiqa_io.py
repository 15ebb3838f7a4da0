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

ImageInput = Union[str, os.PathLike, bytes, Image.Image, np.ndarray]  # or a torch tensor (CHW / HWC)

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
    if _is_tensor(source):
        return f"<tensor {str(getattr(source, 'dtype', '')).replace('torch.', '')} {tuple(getattr(source, 'shape', ()))}>"
    return repr(source)[:80]


def scale_to_uint8(arr: np.ndarray, source: object = None) -> np.ndarray:
    """Numeric pixel values as 8-bit levels, by the one rule for arrays (dtype and value range decide).

    * ``uint8``: as is;
    * ``uint16`` (PIL ``I;16``): scaled by 65535;
    * floats: values within [0, 1] are scaled by 255; values within [0, 255] (max > 1) are 8-bit levels;
    * other integers (PIL ``I``, int32 ...): values within [0, 255] are 8-bit levels, within [0, 65535] 16-bit;
    * negative values, values above the range, NaN or inf: :class:`ImageReadError` naming ``source``.
    """
    src = source if source is not None else arr
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_ or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ImageReadError(src, f"unsupported dtype {arr.dtype} (use uint8, uint16 or float)")
    if arr.size == 0:
        raise ImageReadError(src, "empty array")
    if arr.dtype == np.uint16:
        return (arr.astype(np.float32) / 65535.0 * 255.0 + 0.5).astype(np.uint8)
    values = arr.astype(np.float64, copy=False)
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(values).all():
        raise ImageReadError(src, "array holds NaN or inf")
    lo, hi = float(values.min()), float(values.max())
    if lo < 0:
        raise ImageReadError(src, f"negative pixel values (min {lo:g}); expected [0, 1] or [0, 255]")
    if np.issubdtype(arr.dtype, np.floating):
        if hi <= 1.0:
            return (values * 255.0 + 0.5).astype(np.uint8)
        if hi <= 255.0:
            return (values + 0.5).astype(np.uint8)
        raise ImageReadError(src, f"float pixel values above 255 (max {hi:g}); expected [0, 1] or [0, 255]")
    if hi <= 255:
        return values.astype(np.uint8)
    if hi <= 65535:
        return (values / 65535.0 * 255.0 + 0.5).astype(np.uint8)
    raise ImageReadError(src, f"integer pixel values above 65535 (max {hi:g})")


def _to_rgb8(img: Image.Image, source: object = None) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB; numeric modes (I;16, I, F) follow :func:`scale_to_uint8`."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        arr = np.asarray(img).astype(np.uint16)
        return Image.fromarray(scale_to_uint8(arr, source if source is not None else img), "L").convert("RGB")
    if img.mode in ("I", "F"):
        arr = np.asarray(img)
        return Image.fromarray(scale_to_uint8(arr, source if source is not None else img), "L").convert("RGB")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # Composite on white: transparent regions of a face cut-out should not read as black.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if img.mode != "RGB":
        return img.convert("RGB")
    return img


def _is_tensor(obj: object) -> bool:
    return type(obj).__module__.split(".")[0] == "torch" and hasattr(obj, "detach")


def tensor_to_array(tensor: object, source: object = None) -> np.ndarray:
    """A torch tensor as an HxW or HxWxC numpy array: CxHxW (torch's layout) or HxWxC, a leading batch of 1 dropped.

    A 3-D tensor is CHW when its first dimension is 1, 3 or 4 (the channel counts) and HWC when only its last is.
    """
    arr = tensor.detach().cpu()  # type: ignore[attr-defined]
    if str(arr.dtype) in ("torch.bfloat16", "torch.float16"):
        arr = arr.float()
    arr = arr.numpy()
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and (arr.shape[2] not in (1, 3, 4) or arr.shape[0] <= arr.shape[2]):
        arr = np.moveaxis(arr, 0, -1)
    if arr.ndim not in (2, 3):
        raise ImageReadError(source if source is not None else f"<tensor {tuple(arr.shape)}>",
                             f"expected a CxHxW or HxWxC tensor, got shape {tuple(arr.shape)}")
    return arr


def array_to_image(arr: np.ndarray, source: object = None) -> Image.Image:
    """Wrap an HxW, HxWx1, HxWx3 or HxWx4 array as RGB; values scaled by :func:`scale_to_uint8`."""
    src = source if source is not None else arr
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ImageReadError(src, f"expected an HxW or HxWxC (C in 1,3,4) array, got shape {arr.shape}")
    if arr.size == 0:
        raise ImageReadError(src, "empty array")
    arr = scale_to_uint8(arr, src)
    mode = "L" if arr.ndim == 2 else ("RGB" if arr.shape[2] == 3 else "RGBA")
    return _to_rgb8(Image.fromarray(np.ascontiguousarray(arr), mode))


def load_image(source: ImageInput) -> Image.Image:
    """Return ``source`` as an 8-bit RGB PIL image with EXIF rotation applied.

    Accepts a path, raw encoded bytes, a PIL image, a numpy array (RGB channel order) or a torch tensor
    (CxHxW or HxWxC). Numeric arrays and PIL modes I;16 / I / F are scaled by :func:`scale_to_uint8`.
    """
    if isinstance(source, Image.Image):
        return _to_rgb8(ImageOps.exif_transpose(source) or source)
    if isinstance(source, np.ndarray):
        return array_to_image(source)
    if _is_tensor(source):
        return array_to_image(tensor_to_array(source), source)
    if isinstance(source, (bytes, bytearray)):
        fp: object = io.BytesIO(source)
    elif isinstance(source, (str, os.PathLike)):
        if isinstance(source, str) and "://" in source[:16] and source.split("://", 1)[0].isalpha():
            raise ImageReadError(source, "URLs are not supported, download the file first")
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
            return _to_rgb8(img, source)
    except ImageReadError:
        raise
    except UnidentifiedImageError:
        raise ImageReadError(source, "not a recognised image format") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageReadError(source, f"{type(exc).__name__}: {exc}") from None


def scan_images(root: str | os.PathLike, skipped: list | None = None, exclude: tuple = ()) -> list[Path]:
    """Every image file under ``root`` (recursive, following symlinked folders once), sorted.

    Entries left out are appended to ``skipped`` as ``(path, reason)``: unsupported formats (``.heic``, ``.txt``,
    ...), symlink loops, broken links, folders that cannot be read, special files. ``exclude``: paths (the
    command's own outputs) neither listed nor reported.
    """
    skipped = [] if skipped is None else skipped
    excluded = {os.path.abspath(p) for p in exclude}
    found: list[Path] = []
    notes: list[tuple[Path, str]] = []

    def walk(folder: Path, ancestors: frozenset) -> None:
        try:
            st = os.stat(folder)
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            notes.append((folder, f"skipped: folder cannot be read ({exc.strerror or type(exc).__name__})"))
            return
        here = ancestors | {(st.st_dev, st.st_ino)}
        for entry in entries:
            path = Path(entry.path)
            if os.path.abspath(path) in excluded:
                continue
            try:
                if entry.is_dir():
                    target = os.stat(path)
                    if (target.st_dev, target.st_ino) in here:
                        notes.append((path, f"skipped: symlink loop (points back to {os.path.realpath(path)})"))
                    else:
                        walk(path, here)
                    continue
                if entry.is_file():
                    if path.suffix.lower() in IMAGE_SUFFIXES:
                        found.append(path)
                    else:
                        kind = f"'{path.suffix}'" if path.suffix else "no extension"
                        notes.append((path, f"skipped: unsupported format ({kind}; supported: "
                                            f"{', '.join(sorted(IMAGE_SUFFIXES))})"))
                    continue
                if entry.is_symlink():
                    reason = "broken symlink" if not os.path.lexists(os.path.realpath(path)) else "unusable symlink"
                    notes.append((path, f"skipped: {reason}"))
                else:
                    notes.append((path, "skipped: not a regular file"))
            except OSError as exc:
                reason = "symlink loop" if getattr(exc, "errno", None) == 40 else (exc.strerror or type(exc).__name__)
                notes.append((path, f"skipped: {reason}"))

    walk(Path(root), frozenset())
    skipped.extend((str(p), reason) for p, reason in sorted(notes, key=lambda n: n[0]))
    return sorted(found)
