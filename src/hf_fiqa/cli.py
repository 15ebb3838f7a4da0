"""The ``hf-fiqa`` command. Each area registers its own sub-commands; this file only wires them."""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules exposing ``register(subparsers)``. Imported lazily per run so that ``hf-fiqa --help``
# does not pay for torch/transformers imports it does not need.
COMMAND_MODULES = [
    "hf_fiqa.pipelines.commands",
    "hf_fiqa.models.commands",
    "hf_fiqa.embedding.commands",
    "hf_fiqa.labels.commands",
    "hf_fiqa.data.commands",
    "hf_fiqa.metrics.commands",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hf-fiqa", description="No-reference face image quality assessment.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
