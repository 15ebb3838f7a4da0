"""The ``hf-fiqa`` command. Each area registers its own sub-commands; this file only wires them."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
import types

# Modules exposing ``register(subparsers)``. Building the parser imports only these modules (plain argparse
# code), never torch or transformers: ``hf-fiqa --help`` and ``hf-fiqa <sub> --help`` stay fast.
COMMAND_MODULES = [
    "hf_fiqa.pipelines.commands",
    "hf_fiqa.models.commands",
    "hf_fiqa.embedding.commands",
    "hf_fiqa.labels.commands",
    "hf_fiqa.data.commands",
    "hf_fiqa.metrics.commands",
    "hf_fiqa.recipes.commands",
    "hf_fiqa.export.commands",
]


def _version() -> str:
    from . import __version__

    return __version__


def import_command_module(name: str) -> types.ModuleType:
    """Import a ``commands`` module without running its package's ``__init__``.

    Some packages register models or the pipeline task when imported (torch, transformers: seconds). The
    command module only needs the package as a namespace, so a bare stand-in is used while it loads and removed
    afterwards; the real package initialises as usual when a command runs and imports it.
    """
    if name in sys.modules:
        return sys.modules[name]
    package = name.rpartition(".")[0]
    if package in sys.modules:
        return importlib.import_module(name)
    spec = importlib.util.find_spec(package)
    if spec is None or spec.submodule_search_locations is None:
        return importlib.import_module(name)
    stub = types.ModuleType(package)
    stub.__path__ = list(spec.submodule_search_locations)
    stub.__package__ = package
    sys.modules[package] = stub
    try:
        return importlib.import_module(name)
    finally:
        if sys.modules.get(package) is stub:
            del sys.modules[package]
            for key in [k for k in sys.modules if k.startswith(package + ".")]:
                module = sys.modules[key]
                if key != name and getattr(module, "__spec__", None) is not None and _needs_package(module):
                    del sys.modules[key]


def _needs_package(module: types.ModuleType) -> bool:
    """Sub-packages loaded under the stand-in are dropped (they would miss their parent's side effects)."""
    return hasattr(module, "__path__")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hf-fiqa", description="No-reference face image quality assessment.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        import_command_module(name).register(sub)
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
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"hf-fiqa {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
