"""Scorers: one protocol, any crop size, loaded by name or folder without knowing the family."""

from __future__ import annotations

import numpy as np
import pytest

from hf_fiqa.faces import AlignedFace
from hf_fiqa.scorers import BASELINES, QualityScorer, SharpnessScorer, crop_spec, load_scorer


def _crops(size: int, n: int = 3) -> list[AlignedFace]:
    rng = np.random.default_rng(size)
    return [AlignedFace(crop=rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(n)]


def test_every_baseline_loads_by_name_and_follows_the_protocol():
    for name in BASELINES:
        scorer = load_scorer(name)
        assert isinstance(scorer, QualityScorer) and scorer.name == name
        assert crop_spec(scorer).size == scorer.crop_size and crop_spec(scorer).template is None


def test_sharpness_judges_every_crop_at_its_own_scale():
    small, large = _crops(112, 1), _crops(224, 1)
    large[0].crop[:] = np.kron(small[0].crop, np.ones((2, 2, 1), dtype=np.uint8))  # the same face, twice the pixels
    scorer = SharpnessScorer()
    np.testing.assert_allclose(scorer.score(large), scorer.score(small), rtol=0.35)


def test_model_scorer_takes_crops_of_any_size(tiny_maniqa_dir):
    scorer = load_scorer(str(tiny_maniqa_dir))
    out = scorer.score(_crops(scorer.crop_size) + _crops(3 * scorer.crop_size, 2), batch_size=2)
    assert out.shape == (5,) and out.dtype == np.float64 and np.isfinite(out).all()


def test_unknown_name_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="cannot load a quality scorer from"):
        load_scorer(str(tmp_path / "nowhere"))
