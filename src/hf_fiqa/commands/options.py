"""The command-line options the ``hf-fiqa`` commands share, and their checks before any work.

* output locations: :func:`check_output_file` / :func:`check_output_dir` (the output's folder exists or is
  created, the output is not one of the inputs, its extension is one the command writes, an existing output is
  refused unless ``--overwrite``), :func:`check_output_folder_free` (a folder that already holds a result) and
  :func:`check_new_output_folder` (a folder the command writes as a whole, see
  :class:`hf_fiqa.atomic.StagedFolder`);
* argparse types for numbers (:func:`whole_number`, :func:`positive_int`, ``non_negative_int``, :func:`positive_float`);
* ``--device`` / ``--dtype`` / ``--no-progress`` declared the same way everywhere, and resolved
  (:func:`resolve_device`, :func:`torch_dtype`);
* inputs given as URLs (:func:`is_url`, :func:`reject_urls`) and the one error line a command prints
  (:func:`fail`).

Problems raise :class:`OutputError` or :class:`UsageError` naming the option; the commands print them with
:func:`fail` (exit code 2, no traceback). How outputs are then written is :mod:`hf_fiqa.atomic`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence


class OutputError(ValueError):
    """An output location cannot be used; raised before any work is done. The message names it."""


class UsageError(ValueError):
    """A command-line argument is invalid; the message names it."""


# -- output locations, checked before any work ---------------------------------------------------------------------
def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _ensure_parent(path: Path, what: str) -> None:
    parent = path.parent if str(path.parent) else Path(".")
    if parent.exists() and not parent.is_dir():
        raise OutputError(f"{what} {path}: {parent} is not a folder")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{what} {path}: cannot create its folder {parent} ({exc.strerror or exc})") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{what} {path}: its folder {parent} is not writable")


def check_output_file(path: str | os.PathLike | None, suffixes: Sequence[str], *, inputs: Iterable[Any] = (),
                      overwrite: bool = False, what: str = "--output") -> Path | None:
    """Validate an output file before any work; returns it as a Path (``None`` passes through).

    ``suffixes``: the extensions the command writes (lower case, with the dot). ``inputs``: paths the command
    reads (the output may not be one of them, nor a folder given as input). The parent folder is created.
    """
    if path is None:
        return None
    out = Path(path)
    for item in inputs:
        if isinstance(item, (str, os.PathLike)) and (Path(item) == out or _same_file(Path(item), out)):
            raise OutputError(f"{what} {out} is also an input; choose another output file")
    suffix = out.suffix.lower()
    if suffix not in suffixes:
        shown = f"'{out.suffix}'" if out.suffix else "no extension"
        raise OutputError(f"{what} {out}: unsupported file type ({shown}); supported: {', '.join(suffixes)}")
    if out.is_dir():
        raise OutputError(f"{what} {out} is a folder; give a file name ending in {', '.join(suffixes)}")
    if out.exists() and not overwrite:
        raise OutputError(f"{what} {out} already exists; pass --overwrite to replace it")
    _ensure_parent(out, what)
    return out


def check_output_dir(path: str | os.PathLike | None, *, inputs: Iterable[Any] = (), what: str = "--output",
                     create: bool = True) -> Path | None:
    """Validate an output folder before any work: not a file, not an input, creatable and writable."""
    if path is None:
        return None
    out = Path(path)
    for item in inputs:
        if isinstance(item, (str, os.PathLike)) and (Path(item) == out or _same_file(Path(item), out)):
            raise OutputError(f"{what} {out} is also an input; choose another output folder")
    if out.exists() and not out.is_dir():
        raise OutputError(f"{what} {out} exists and is not a folder")
    if create:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{what} {out}: cannot create the folder ({exc.strerror or exc})") from None
        if not os.access(out, os.W_OK | os.X_OK):
            raise OutputError(f"{what} {out}: the folder is not writable")
    else:
        _ensure_parent(out, what)
    return out


def check_output_folder_free(path: str | os.PathLike, names: Iterable[str], overwrite: bool,
                             what: str = "--output-dir") -> None:
    """Refuse a folder that already holds any of ``names`` (a previous result) unless ``overwrite``."""
    out = Path(path)
    if overwrite or not out.is_dir():
        return
    present = [n for n in names if (out / n).exists()]
    if present:
        raise OutputError(f"{what} {out} already holds {', '.join(present[:5])}; pass --overwrite to replace them")


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` is ``folder`` or lies under it (both resolved, so links and ``..`` count)."""
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except (OSError, ValueError, RuntimeError):
        return False


def check_new_output_folder(path: str | os.PathLike, *, overwrite: bool, inputs: Iterable[Any] = (),
                            what: str = "--output") -> Path:
    """Validate a folder a command writes as a whole (:class:`hf_fiqa.atomic.StagedFolder`) before any work.

    The folder must not exist, or be empty, unless ``overwrite`` (then it is replaced, with everything in it).
    Whatever ``overwrite`` says, it may not be or hold one of ``inputs``, nor hold the working directory, and
    its parent must be creatable and writable (the new folder is built beside it). Returns it as a Path.
    """
    out = Path(path)
    for item in inputs:
        if isinstance(item, (str, os.PathLike)) and (Path(item) == out or _same_file(Path(item), out)
                                                      or (out.is_dir() and _inside(Path(item), out))):
            relation = "is" if Path(item) == out or _same_file(Path(item), out) else "holds"
            raise OutputError(f"{what} {out} {relation} the input {item}; choose another output folder")
    if out.exists() and not out.is_dir():
        raise OutputError(f"{what} {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise OutputError(f"{what} {out} already exists; pass --overwrite to replace it")
        if _inside(Path.cwd(), out):
            raise OutputError(f"{what} {out} holds the working directory; --overwrite would delete it, "
                              "choose another output folder")
    _ensure_parent(out, what)
    return out


# -- numbers -----------------------------------------------------------------------------------------------------
def whole_number(minimum: int = 1, word: str | None = None, word_value: Any = None) -> Callable[[str], Any]:
    """argparse type: a whole number >= ``minimum``, or ``word`` (case-insensitive) standing for ``word_value``."""
    accepted = ("a positive whole number" if minimum == 1 else f"a whole number >= {minimum}") + (
        f" or '{word}'" if word else "")

    def parse(text: str) -> Any:
        if word is not None and text.strip().lower() == word:
            return word_value
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {accepted}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected {accepted}, got {text}")
        return value

    return parse


positive_int = whole_number(1)
non_negative_int = whole_number(0)


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (value > 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


# -- device, precision, progress -----------------------------------------------------------------------------------
DTYPES = ("float32", "bfloat16", "float16")


def add_device_args(parser: argparse.ArgumentParser, dtype: bool = True) -> None:
    """The same ``--device`` (and ``--dtype``) on every command that runs a model."""
    parser.add_argument("--device", default=None,
                        help="torch device: cpu, cuda, cuda:1, mps (default: cuda when available, else cpu)")
    if dtype:
        parser.add_argument("--dtype", choices=DTYPES, default=None,
                            help="model precision (default: the saved model's, float32)")


#: DataLoader worker processes by default for ``embed`` and ``score``: one prepares photos while the model runs
#: (measured on 2 cores in bench/bench_scale_out.py; see the README's "At scale").
DEFAULT_WORKERS = 1


def add_workers_arg(parser: argparse.ArgumentParser) -> None:
    """``--workers``: the processes that decode, detect and align photos while the model runs."""
    parser.add_argument("--workers", type=non_negative_int, default=DEFAULT_WORKERS,
                        help="DataLoader worker processes that decode, detect and align photos while the model runs "
                             f"(0: everything in the main process; default {DEFAULT_WORKERS})")


def add_progress_args(parser: argparse.ArgumentParser) -> None:
    """``--no-progress`` everywhere; ``--quiet`` kept as a hidden alias."""
    parser.add_argument("--no-progress", dest="no_progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--quiet", dest="no_progress", action="store_true", help=argparse.SUPPRESS)


def resolve_device(name: str | None, group: Any = None) -> str:
    """The device a command runs on: ``name`` checked, or CUDA when available, else CPU (imports torch).

    Under a multi-process launch (``group``: a :class:`hf_fiqa.sharding.ProcessGroup` of several processes) the
    default and a bare ``cuda`` mean this process's own GPU (``cuda:LOCAL_RANK``), as accelerate assigns it."""
    import torch

    launched = getattr(group, "world", 1) > 1 and getattr(group, "device", None)
    if name is None or str(name).strip() == "" or (launched and str(name).strip() == "cuda"):
        if launched:
            return str(group.device)
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(str(name))
    except (RuntimeError, ValueError) as exc:
        raise UsageError(f"--device {name!r} is not a torch device (use cpu, cuda, cuda:N or mps): {exc}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"--device {name}: CUDA is not available on this machine (use --device cpu)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) present")
    elif device.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise UsageError(f"--device {name}: MPS is not available on this machine")
    elif device.type != "cpu":
        raise UsageError(f"--device {name}: unsupported device type {device.type!r} (use cpu, cuda or mps)")
    return str(device)


def torch_dtype(name: str | None):
    """``--dtype`` as a torch dtype (None stays None)."""
    if name is None:
        return None
    import torch

    if name not in DTYPES:
        raise UsageError(f"--dtype {name!r}: choose from {', '.join(DTYPES)}")
    return getattr(torch, name)


# -- inputs and errors ---------------------------------------------------------------------------------------------
def is_url(text: Any) -> bool:
    return isinstance(text, str) and "://" in text[:16] and text.split("://", 1)[0].isalpha()


def reject_urls(items: Iterable[Any], what: str = "input") -> None:
    """URLs are not read; say so instead of "no such file"."""
    for item in items:
        if is_url(item):
            raise UsageError(f"{what} {item}: URLs are not supported, download the file first")


def fail(command: str, exc: BaseException | str, code: int = 2) -> int:
    """Print ``hf-fiqa COMMAND: error: message`` to stderr; return the exit code."""
    print(f"hf-fiqa {command}: error: {exc}", file=sys.stderr)
    return code
