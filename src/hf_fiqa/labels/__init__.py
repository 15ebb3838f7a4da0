"""SDD-FIQA quality pseudo-labels from recognition embeddings (see :mod:`hf_fiqa.labels.sdd`).

Attributes are imported lazily so that ``hf-fiqa --help`` (which imports the sub-command module
of this package) does not pay for torch.
"""

from __future__ import annotations

from typing import Any

__all__ = ["sdd_pseudo_labels", "sdd_raw_wasserstein", "PseudoLabelReport", "normalise_repetitions", "EmbeddingError"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import sdd

        return getattr(sdd, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
