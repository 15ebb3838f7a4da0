"""hf-fiqa: no-reference face image quality assessment on the Hugging Face stack.

Importing the package is cheap (no torch, no transformers) and registers nothing. :func:`register` adds the
model families to transformers' Auto classes and the ``face-image-quality`` task to ``transformers.pipeline``;
the public names below load on first use and call it, so ``from hf_fiqa import FaceQualityPipeline`` is enough.
A script that only uses transformers' own entry points calls it once::

    import hf_fiqa
    from transformers import pipeline

    hf_fiqa.register()
    scorer = pipeline("face-image-quality", model="org/maniqa-sdd-fiqa", trust_remote_code=True)
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "FaceQualityAnalyzer": "hf_fiqa.pipelines",
    "FaceQualityPipeline": "hf_fiqa.pipelines",
    "MANIQAConfig": "hf_fiqa.models.maniqa",
    "MANIQAForImageQualityAssessment": "hf_fiqa.models.maniqa",
    "MANIQAImageProcessor": "hf_fiqa.models.maniqa",
    "QualityScorer": "hf_fiqa.scorers",
    "load_scorer": "hf_fiqa.scorers",
}

__all__ = sorted([*_LAZY, "__version__", "register"])


def register() -> None:
    """Register the model families with the transformers Auto classes and the ``face-image-quality`` task with
    ``transformers.pipeline``. Idempotent: call it as often as you like."""
    from .models import register_models
    from .pipelines import register_pipeline

    register_models()
    register_pipeline()


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    register()
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
