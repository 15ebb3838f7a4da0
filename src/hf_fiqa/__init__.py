"""hf-fiqa: no-reference face image quality assessment on the Hugging Face stack.

Importing the package is cheap (no torch, no transformers): the public names below load on first use.
The models are registered with the transformers Auto classes, and the ``face-image-quality`` task with
``transformers.pipeline``, as soon as either side is used: on first access to one of those names, when
transformers' Auto classes or pipelines are imported after ``import hf_fiqa``, or at once when they already
were. ``import hf_fiqa`` followed by ``pipeline("face-image-quality", ...)`` therefore works as before.
"""

from __future__ import annotations

import importlib
import importlib.abc
import sys
import warnings

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

__all__ = sorted([*_LAZY, "__version__"])


def _register_models() -> None:
    importlib.import_module("hf_fiqa.models")  # Auto-class registration (side effect of the import)


def _register_pipeline() -> None:
    _register_models()
    importlib.import_module("hf_fiqa.pipelines")  # registers the "face-image-quality" task


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    _register_pipeline()
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs an action right after a given module has been executed (registration when transformers loads)."""

    def __init__(self, actions: dict):
        self.actions = dict(actions)

    def find_spec(self, fullname, path=None, target=None):
        action = self.actions.get(fullname)
        if action is None:
            return None
        spec = None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        loader = getattr(spec, "loader", None)
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        del self.actions[fullname]
        original = loader.exec_module

        def exec_module(module):
            original(module)
            try:
                action()
            except Exception as exc:  # never break the user's transformers import
                warnings.warn(f"hf_fiqa: registering with transformers failed: {type(exc).__name__}: {exc}", stacklevel=2)

        loader.exec_module = exec_module
        return spec


def _install_registration() -> None:
    pending = {}
    for module, action in (("transformers.models.auto.modeling_auto", _register_models),
                           ("transformers.pipelines", _register_pipeline)):
        if module in sys.modules:
            action()
        else:
            pending[module] = action
    if pending and not any(isinstance(f, _AfterImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport(pending))


_install_registration()
