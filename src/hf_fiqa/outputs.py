"""Where commands write, checked before any work, and written so that a file is complete or absent.

Every ``hf-fiqa`` command goes through this module (no per-command copies):

* :func:`check_output_file` / :func:`check_output_dir`: before the first image is read, the output's folder
  exists or is created, the output is not one of the inputs, its extension is one the command writes, and an
  existing output is refused unless ``--overwrite`` is given;
* :func:`atomic_write` and :class:`AtomicTextFile`: the bytes go to a temporary file in the output's own folder
  and are moved onto the final name with :func:`os.replace` once complete;
* :class:`RowWriter`: the CSV / JSONL rows of ``score`` and ``video`` (to a file, atomically, or to stdout);
* the shared argument checks (positive numbers, ``--device``, ``--dtype``, URLs given as inputs).

File names that are not valid UTF-8 (Linux allows any bytes) are carried as Python does, decoded with
``surrogateescape`` (``os.fsdecode``). Text files are written UTF-8 with ``errors="surrogateescape"``, so such a
name appears in a CSV with its original bytes; JSONL holds it as JSON ``\\udcXX`` escapes, which ``json.loads``
turns back into the same ``str`` (``os.fsencode`` gives the original bytes).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Sequence

#: How text outputs are encoded: UTF-8, undecodable file-name bytes written back as they were.
TEXT_ENCODING = "utf-8"
TEXT_ERRORS = "surrogateescape"


class OutputError(ValueError):
    """An output location cannot be used; raised before any work is done. The message names it."""


class UsageError(ValueError):
    """A command-line argument is invalid; the message names it."""


# -- checks done before any work -----------------------------------------------------------------------------------
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


# -- atomic writing ------------------------------------------------------------------------------------------------
def _temp_path(path: Path) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent if str(path.parent) else ".")
    os.close(fd)
    return Path(name)


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> None:
    """``write(tmp)`` to a temporary file in ``path``'s folder, then rename it onto ``path``.

    Readers never see half a file; when ``write`` raises, the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    tmp = _temp_path(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class AtomicTextFile:
    """A text file written under a temporary name and moved onto ``path`` by :meth:`commit`.

    :meth:`abort` (or leaving a ``with`` block by an exception) keeps what was written as ``path.partial``
    when ``keep_partial`` is set, else removes it; ``path`` itself is never half-written.
    """

    def __init__(self, path: str | os.PathLike, keep_partial: bool = True):
        self.path = Path(path)
        self.keep_partial = keep_partial
        self.tmp = _temp_path(self.path)
        self.handle: IO[str] = open(self.tmp, "w", newline="", encoding=TEXT_ENCODING, errors=TEXT_ERRORS)
        self.partial: Path | None = None

    def commit(self) -> Path:
        self.handle.close()
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> Path | None:
        self.handle.close()
        if self.keep_partial and self.tmp.stat().st_size:
            self.partial = self.path.with_name(self.path.name + ".partial")
            os.replace(self.tmp, self.partial)
            return self.partial
        self.tmp.unlink(missing_ok=True)
        return None

    def __enter__(self) -> IO[str]:
        return self.handle

    def __exit__(self, kind, value, tb) -> None:
        if kind is None:
            self.commit()
        else:
            self.abort()


def save_figure(fig: Any, path: str | os.PathLike, **kwargs: Any) -> Path:
    """``fig.savefig`` through :func:`atomic_write` (the format is taken from ``path``'s extension)."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    atomic_write(path, lambda tmp: fig.savefig(tmp, format=fmt, **kwargs))
    return path


# -- rows --------------------------------------------------------------------------------------------------------
ROW_SUFFIXES = (".csv", ".jsonl")


class RowWriter:
    """CSV or JSONL (by suffix) to a file, written atomically, or CSV to stdout.

    Call :meth:`close` with ``ok=True`` to move the finished file into place; ``ok=False`` (an interruption)
    keeps the rows written so far as ``OUTPUT.partial``.
    """

    def __init__(self, output: str | os.PathLike | None, columns: list[str]):
        self.columns = columns
        self.output = Path(output) if output else None
        self.jsonl = self.output is not None and self.output.suffix.lower() == ".jsonl"
        self.file: AtomicTextFile | None = None
        if self.output is not None:
            self.file = AtomicTextFile(self.output)
            self.handle: IO[str] = self.file.handle
        else:
            self.handle = sys.stdout
            try:  # file names with undecodable bytes go out as those bytes, not as a crash
                sys.stdout.reconfigure(errors=TEXT_ERRORS)  # type: ignore[union-attr]
            except (AttributeError, ValueError):
                pass
        self.csv = None if self.jsonl else csv.DictWriter(self.handle, fieldnames=columns, extrasaction="ignore")
        if self.csv:
            self.csv.writeheader()

    def write(self, row: dict) -> None:
        if self.jsonl:
            self.handle.write(json.dumps({k: row.get(k) for k in self.columns}, default=str) + "\n")
        else:
            self.csv.writerow(row)
        self.handle.flush()

    def close(self, ok: bool = True) -> Path | None:
        """Finish: the output file when ``ok``, else the ``.partial`` file kept (or None)."""
        if self.file is None:
            self.handle.flush()
            return None
        return self.file.commit() if ok else self.file.abort()


# -- argument checks ---------------------------------------------------------------------------------------------
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


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (value > 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


DTYPES = ("float32", "bfloat16", "float16")


def add_device_args(parser: argparse.ArgumentParser, dtype: bool = True) -> None:
    """The same ``--device`` (and ``--dtype``) on every command that runs a model."""
    parser.add_argument("--device", default=None,
                        help="torch device: cpu, cuda, cuda:1, mps (default: cuda when available, else cpu)")
    if dtype:
        parser.add_argument("--dtype", choices=DTYPES, default=None,
                            help="model precision (default: the saved model's, float32)")


def add_progress_args(parser: argparse.ArgumentParser) -> None:
    """``--no-progress`` everywhere; ``--quiet`` kept as a hidden alias."""
    parser.add_argument("--no-progress", dest="no_progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--quiet", dest="no_progress", action="store_true", help=argparse.SUPPRESS)


def resolve_device(name: str | None) -> str:
    """The device a command runs on: ``name`` checked, or CUDA when available, else CPU (imports torch)."""
    import torch

    if name is None or str(name).strip() == "":
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


def check_output_folder_free(path: str | os.PathLike, names: Iterable[str], overwrite: bool,
                             what: str = "--output-dir") -> None:
    """Refuse a folder that already holds any of ``names`` (a previous result) unless ``overwrite``."""
    out = Path(path)
    if overwrite or not out.is_dir():
        return
    present = [n for n in names if (out / n).exists()]
    if present:
        raise OutputError(f"{what} {out} already holds {', '.join(present[:5])}; pass --overwrite to replace them")


class StagedDir:
    """Write several files into a hidden folder next to their destination, then move each into place.

    ``with StagedDir(out) as tmp: paths = write(tmp)``; then :meth:`publish` maps the staged paths to ``out``
    with :func:`os.replace` (each file appears complete or not at all). The staging folder is always removed.
    """

    def __init__(self, out_dir: str | os.PathLike):
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.out))

    def __enter__(self) -> Path:
        return self.tmp

    def publish(self, staged: dict) -> dict:
        final = {}
        for key, path in staged.items():
            path = Path(path)
            target = self.out / path.relative_to(self.tmp)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
            final[key] = target
        return final

    def __exit__(self, *exc) -> None:
        import shutil

        shutil.rmtree(self.tmp, ignore_errors=True)
