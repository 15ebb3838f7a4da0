"""Where the optional material beside the project lives (real photos, detector weights).

It is never part of the package: tests and benchmarks find it through ``HF_FIQA_SHARED``,
defaulting to ``../shared`` next to the repository, and skip when it is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

_REPO_ROOT = Path(__file__).resolve().parents[2]
#: The repository root of a source checkout (``third_party/`` lives there; absent from an installed wheel).
SOURCE_TREE = _REPO_ROOT


def shared_dir() -> Path:
    """The folder holding ``data/`` and ``weights/`` (may not exist on a user's machine)."""
    return Path(os.environ.get("HF_FIQA_SHARED", _REPO_ROOT.parent / "shared"))
