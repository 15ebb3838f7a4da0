"""The ``hf-fiqa`` sub-commands, one module each. Each module has ``register(subparsers)``, which adds its
parsers and imports nothing heavy (so ``hf-fiqa --help`` never loads torch); the work is imported when the
command runs. This is the top layer: it may import every part of the package, and nothing imports it.
"""

from __future__ import annotations

COMMAND_MODULES = (
    "score",          # score, video
    "convert",        # convert <family>
    "embed",          # embed
    "pseudo_labels",  # pseudo-label
    "dataset",        # dataset convert / publish / rec2parquet
    "evaluate",       # evaluate-iqa, evaluate-fiqa
    "sdd_fiqa",       # sdd-fiqa (the main job)
    "export",         # export onnx
    "train",          # train (also the repository's train.py)
)

__all__ = ["COMMAND_MODULES"]
