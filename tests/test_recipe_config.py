"""RecipeConfig (``hf-fiqa sdd-fiqa``): the run size fills what the caller left open and never overrides a value."""

from __future__ import annotations

from hf_fiqa.recipes.sdd_fiqa import FULL_SIZES, QUICK_SIZES, RecipeConfig


def _sizes(config: RecipeConfig) -> dict:
    return {name: getattr(config, name) for name in QUICK_SIZES}


def test_run_size_fills_fields_left_open():
    assert _sizes(RecipeConfig(shared="s", output="o")) == QUICK_SIZES == {
        "copies_per_face": 2, "fit_epochs": 10, "magface_steps": 150}
    assert _sizes(RecipeConfig(shared="s", output="o", quick=False)) == FULL_SIZES == {
        "copies_per_face": 3, "fit_epochs": 16, "magface_steps": 300}
    assert _sizes(RecipeConfig(shared="s", output="o", limit=48)) == QUICK_SIZES  # smoke runs: same sizes


def test_explicit_values_are_kept_in_both_run_sizes():
    for quick in (True, False):
        config = RecipeConfig(shared="s", output="o", quick=quick, copies_per_face=1, fit_epochs=1, magface_steps=4)
        assert _sizes(config) == {"copies_per_face": 1, "fit_epochs": 1, "magface_steps": 4}
    partial = RecipeConfig(shared="s", output="o", quick=False, fit_epochs=2)
    assert _sizes(partial) == {**FULL_SIZES, "fit_epochs": 2}
