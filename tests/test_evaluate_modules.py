"""The ``evaluate`` metric scripts load offline from their folders and match hf_fiqa's functions."""

from __future__ import annotations

import os

import numpy as np
import pytest

# Must be set before ``evaluate`` reads its configuration: nothing may reach the Hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_EVALUATE_OFFLINE", "1")

evaluate = pytest.importorskip("evaluate")

from hf_fiqa.metrics import correlation_table, fnm_edc  # noqa: E402
from hf_fiqa.metrics.evaluate_modules import MODULES, module_path  # noqa: E402


@pytest.fixture(scope="module")
def offline_env():
    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["HF_EVALUATE_OFFLINE"] == "1"


def test_module_scripts_import_hf_fiqa_not_copies():
    for name in MODULES:
        source = open(os.path.join(module_path(name), f"{name}.py"), encoding="utf-8").read()
        assert "from hf_fiqa.metrics." in source
        assert "def correlation_table" not in source and "def fnm_edc" not in source
    with pytest.raises(ValueError, match="unknown evaluate module"):
        module_path("nope")


def test_iqa_correlation_module_matches_function(offline_env):
    metric = evaluate.load(module_path("iqa_correlation"), keep_in_memory=True)
    rng = np.random.default_rng(0)
    pred = rng.normal(size=200)
    mos = 3.0 + np.tanh(pred) + rng.normal(scale=0.2, size=200)
    got = metric.compute(predictions=pred.tolist(), references=mos.tolist())
    expect = correlation_table(pred, mos)
    assert got["n"] == expect["n"] == 200 and got["fit"] == expect["fit"]
    for key in ("srcc", "krcc", "plcc_raw", "plcc_fitted", "rmse_raw", "rmse_fitted"):
        assert got[key] == pytest.approx(expect[key], abs=1e-12), key


def test_edc_pauc_module_matches_function(offline_env):
    metric = evaluate.load(module_path("edc_pauc"), keep_in_memory=True)
    rng = np.random.default_rng(1)
    genuine = rng.normal(1.0, 1.0, size=2000)
    impostor = rng.normal(-1.0, 1.0, size=20_000)
    quality = genuine + rng.normal(scale=1.0, size=2000)  # informative quality
    got = metric.compute(
        qualities=quality.tolist(), scores=genuine.tolist(), impostor_scores=impostor, target_fmr=1e-2, discard_limit=0.3
    )
    expect = fnm_edc(genuine, quality, impostor_scores=impostor, target_fmr=1e-2, discard_limit=0.3)
    for key in ("pauc", "pauc_minus_ideal", "e0", "fmr", "threshold"):
        assert got[key] == pytest.approx(getattr(expect, key), abs=1e-12)
    assert got["n_pairs"] == 2000 and got["threshold_source"] == "fmr"

    hand = metric.compute(
        qualities=[1, 2, 3, 4], scores=[0.1, 0.9, 0.8, 0.7], threshold=0.5, discard_limit=0.5, return_curve=True
    )
    assert hand["pauc"] == pytest.approx(0.0625)
    assert hand["errors"] == [0.25, 0.0, 0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="kind must be"):
        metric.compute(qualities=[1, 2, 3], scores=[0.1, 0.2, 0.3], threshold=0.5, kind="xx")
