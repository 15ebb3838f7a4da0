"""``evaluate`` metric scripts shipped with hf-fiqa, loadable offline by path.

``evaluate.load`` copies a script into its module cache and imports it from there, so each
script imports its maths from :mod:`hf_fiqa.metrics` (absolute imports) instead of holding a
second copy. Use :func:`module_path` to find a script::

    import evaluate
    from hf_fiqa.metrics.evaluate_modules import module_path
    edc = evaluate.load(module_path("edc_pauc"))
"""

from __future__ import annotations

from pathlib import Path

MODULES = ("iqa_correlation", "edc_pauc")


def module_path(name: str) -> str:
    """Directory of the ``evaluate`` module ``name`` (pass it to ``evaluate.load``)."""
    if name not in MODULES:
        raise ValueError(f"unknown evaluate module '{name}'; available: {list(MODULES)}")
    return str(Path(__file__).resolve().parent / name)
