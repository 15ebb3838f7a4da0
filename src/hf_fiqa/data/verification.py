"""insightface verification sets (``lfw.bin``, ``cfp_fp.bin``, ``agedb_30.bin``, ...) as pair datasets.

Each file is a pickle of ``(bins, issame_list)``: ``2 * n`` encoded images (pairs are
consecutive) and ``n`` booleans. Pickle runs arbitrary code on load, and these files are
downloaded from mirrors, so they are read only through :class:`RestrictedUnpickler`, which
refuses every global except the handful that the known producers need, each wrapped so it
can only build the harmless values expected:

* original files (Python 2, protocol 2): JPEG bytes as ``str`` opcodes, plain bools - no
  globals at all (read with ``encoding="bytes"``);
* Python 3, protocol 2: ``bytes`` arrive as ``_codecs.encode(text, "latin1")`` and empty
  bytes as ``__builtin__.bytes()``;
* packers that keep ``cv2.imencode`` output: uint8 numpy arrays (``numpy ... _reconstruct``,
  ``ndarray``, ``dtype``, or ``_frombuffer`` under protocol 5), and ``numpy.bool_`` flags.

Anything else (``os.system``, ``builtins.eval``, object arrays, ...) raises
:class:`UnsafePickleError` naming the file and the refused global.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

from .errors import DatasetFormatError

KNOWN_SETS = ("lfw", "cfp_fp", "cfp_ff", "agedb_30", "calfw", "cplfw", "vgg2_fp")
_LATIN1 = {"latin1", "latin-1", "iso-8859-1", "iso8859-1", "l1"}
_NUMPY_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray")
_NUMERIC_MODULES = ("numpy.core.numeric", "numpy._core.numeric")


class UnsafePickleError(DatasetFormatError):
    """A pickle asked for something a verification set never needs."""


def _np():
    import numpy as np

    return np


def _guard_dtype(spec, *args):
    np = _np()
    if spec not in ("u1", "b1", "|u1", "|b1", "uint8", "bool"):
        raise pickle.UnpicklingError(f"numpy dtype {spec!r} refused (only uint8 images / bool flags)")
    return np.dtype(spec, *args[:2])


class _NdarrayToken:
    """Stands in for ``numpy.ndarray`` in a pickle: only :func:`_guard_reconstruct` accepts it,
    so the class can never be called directly with attacker-chosen arguments."""


def _guard_reconstruct(cls, shape, typecode):
    np = _np()
    if cls is not _NdarrayToken or tuple(shape) != (0,) or typecode not in (b"b", "b", b"B", "B"):
        raise pickle.UnpicklingError("numpy array reconstruction with unexpected arguments refused")
    return np.ndarray.__new__(np.ndarray, (0,), np.uint8)


def _guard_frombuffer(buf, dtype, shape, order):
    np = _np()
    if not isinstance(dtype, np.dtype) or dtype not in (np.dtype("u1"), np.dtype("b1")):
        raise pickle.UnpicklingError(f"array dtype {dtype!r} refused")
    return np.frombuffer(buf, dtype=dtype).reshape(shape, order=order)


def _guard_scalar(dtype, data=b""):
    np = _np()
    if not isinstance(dtype, np.dtype) or dtype != np.dtype("b1"):
        raise pickle.UnpicklingError(f"numpy scalar of dtype {dtype!r} refused (only bool)")
    if not isinstance(data, (bytes, bytearray)) or len(data) != 1:
        raise pickle.UnpicklingError("malformed numpy bool scalar")
    return bool(data[0])


def _guard_codecs_encode(obj, encoding="utf-8", errors="strict"):
    if not isinstance(obj, str) or str(encoding).lower() not in _LATIN1:
        raise pickle.UnpicklingError(f"_codecs.encode({type(obj).__name__}, {encoding!r}) refused (only latin1 text)")
    return obj.encode("latin1")


def _guard_bytes(*args):
    if not args:
        return b""
    if len(args) == 1 and isinstance(args[0], (bytes, bytearray)):
        return bytes(args[0])
    raise pickle.UnpicklingError("bytes() call with unexpected arguments refused")


def _guard_bytearray(*args):
    return bytearray(_guard_bytes(*args))


def _allowed_globals() -> dict[tuple[str, str], object]:
    allowed: dict[tuple[str, str], object] = {
        ("_codecs", "encode"): _guard_codecs_encode,
        ("__builtin__", "bytes"): _guard_bytes,
        ("builtins", "bytes"): _guard_bytes,
        ("__builtin__", "bytearray"): _guard_bytearray,
        ("builtins", "bytearray"): _guard_bytearray,
        ("numpy", "dtype"): _guard_dtype,
        ("numpy", "ndarray"): _NdarrayToken,
    }
    for mod in _NUMPY_MODULES:
        allowed[(mod, "_reconstruct")] = _guard_reconstruct
        allowed[(mod, "scalar")] = _guard_scalar
    for mod in _NUMERIC_MODULES:
        allowed[(mod, "_frombuffer")] = _guard_frombuffer
    return allowed


class RestrictedUnpickler(pickle.Unpickler):
    """A ``pickle.Unpickler`` whose ``find_class`` admits only the guarded globals above."""

    def __init__(self, file, *, source: str = "<pickle>"):
        super().__init__(file, encoding="bytes")
        self.source = source
        self._allowed = _allowed_globals()

    def find_class(self, module: str, name: str):
        key = (module, name)
        if key not in self._allowed:
            raise UnsafePickleError(
                f"{self.source}: refusing to load global {module}.{name} - verification sets only need "
                "bytes, lists and booleans; this file is not one, or has been tampered with"
            )
        return self._allowed[key]


def _as_bytes(item, where: str) -> bytes:
    if isinstance(item, (bytes, bytearray)):
        return bytes(item)
    np = _np()
    if isinstance(item, np.ndarray) and item.dtype == np.uint8:
        return item.tobytes()
    raise DatasetFormatError(f"{where}: expected encoded image bytes, got {type(item).__name__}")


def _as_bool(item, where: str) -> bool:
    np = _np()
    if isinstance(item, (bool, np.bool_)):
        return bool(item)
    if isinstance(item, int) and item in (0, 1):
        return bool(item)
    raise DatasetFormatError(f"{where}: expected a boolean same/different flag, got {item!r}")


def read_verification_bin(path: str | Path) -> tuple[list[bytes], list[bool]]:
    """Safely read ``(image bytes list, issame list)`` from an insightface ``.bin`` file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DatasetFormatError(f"verification file not found: {path}") from None
    try:
        obj = RestrictedUnpickler(io.BytesIO(data), source=str(path)).load()
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, MemoryError) as exc:
        raise DatasetFormatError(f"{path}: not a readable verification pickle ({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, (tuple, list)) or len(obj) != 2:
        raise DatasetFormatError(f"{path}: expected a pickled (bins, issame_list) pair, got {type(obj).__name__}")
    bins, issame = obj
    if not isinstance(bins, (list, tuple)) or not isinstance(issame, (list, tuple)):
        raise DatasetFormatError(f"{path}: bins and issame_list must be lists")
    if len(bins) != 2 * len(issame):
        raise DatasetFormatError(f"{path}: {len(bins)} images for {len(issame)} pairs (need exactly 2 per pair)")
    images = [_as_bytes(b, f"{path} image {i}") for i, b in enumerate(bins)]
    flags = [_as_bool(f, f"{path} pair {i}") for i, f in enumerate(issame)]
    return images, flags


def verification_features():
    from datasets import Features, Image, Value

    return Features({"image1": Image(), "image2": Image(), "issame": Value("bool"), "pair_index": Value("int32")})


def load_verification_pairs(path: str | Path, *, check_images: bool = True):
    """A ``Dataset`` of ``(image1, image2, issame, pair_index)`` from a verification ``.bin``.

    With ``check_images`` each encoded image is decoded once so a corrupt one is reported
    by pair index now rather than in the middle of an evaluation.
    """
    import datasets

    from ..io import ImageReadError, load_image

    images, flags = read_verification_bin(path)
    if check_images:
        for i, blob in enumerate(images):
            try:
                load_image(blob)
            except ImageReadError as exc:
                raise DatasetFormatError(f"{path}: image {i} (pair {i // 2}) is corrupt: {exc.reason}") from None
    return datasets.Dataset.from_dict(
        {
            "image1": [{"bytes": images[2 * i], "path": None} for i in range(len(flags))],
            "image2": [{"bytes": images[2 * i + 1], "path": None} for i in range(len(flags))],
            "issame": flags,
            "pair_index": list(range(len(flags))),
        },
        features=verification_features(),
    )


def load_verification_sets(root: str | Path, names=KNOWN_SETS, *, check_images: bool = True):
    """Every ``<name>.bin`` of ``names`` found in ``root`` as a ``DatasetDict`` keyed by name."""
    import datasets

    root = Path(root)
    found = {name: root / f"{name}.bin" for name in names if (root / f"{name}.bin").is_file()}
    if not found:
        raise DatasetFormatError(f"no verification sets ({', '.join(n + '.bin' for n in names)}) in {root}")
    return datasets.DatasetDict({n: load_verification_pairs(p, check_images=check_images) for n, p in found.items()})
