"""The ``hf-fiqa`` command: builds the parser from :mod:`hf_fiqa.commands` and runs the chosen sub-command."""

from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__
from .commands import COMMAND_MODULES


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hf-fiqa", description="No-reference face image quality assessment.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__package__}.commands.{name}").register(sub)
    return parser


def _tolerate_odd_file_names() -> None:
    """File names that are not valid UTF-8 are printed with their bytes (stdout) or escaped (stderr), never a crash."""
    for stream, errors in ((sys.stdout, "surrogateescape"), (sys.stderr, "backslashreplace")):
        try:
            stream.reconfigure(errors=errors)  # type: ignore[union-attr]
        except (AttributeError, ValueError):
            pass


def main(argv: list[str] | None = None) -> int:
    _tolerate_odd_file_names()
    args = build_parser().parse_args(argv)
    if getattr(args, "loads_models", False):
        from . import register

        register()  # the model families and the pipeline task, for commands that load models
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"hf-fiqa {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
