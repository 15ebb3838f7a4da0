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


def test_head_pose_baseline_prefers_frontal_faces():
    """Geometry: the canonical face's 5 points, turned by known yaws and tilted in the image; the 5-point pose
    baseline falls monotonically with the turn and with the tilt, and needs detections."""
    from hf_fiqa.components.canonical_face import CANONICAL_FACE
    from hf_fiqa.faces.types import DetectedFace
    from hf_fiqa.scorers.baselines import MissingDetectionError

    def face(yaw: float, roll: float = 0.0) -> AlignedFace:
        a, r = np.radians(yaw), np.radians(roll)
        turn = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
        p = CANONICAL_FACE @ turn.T
        xy = np.stack([p[:, 0], -p[:, 1]], 1) @ np.array([[np.cos(r), -np.sin(r)], [np.sin(r), np.cos(r)]]).T
        five = np.stack([xy[[33, 133]].mean(0), xy[[362, 263]].mean(0), xy[1], xy[61], xy[291]]) * 10 + 200
        return AlignedFace(crop=np.zeros((112, 112, 3), np.uint8),
                           face=DetectedFace(box=np.array([100, 100, 300, 300], np.float32), landmarks=five, score=0.9))

    scorer = load_scorer("head_pose_5pt")
    by_yaw = scorer.score([face(y) for y in (0, 15, 30, 50, 70)])
    by_roll = scorer.score([face(0, r) for r in (0, 10, 25)])
    assert by_yaw[0] == pytest.approx(1.0, abs=0.01) and np.all(np.diff(by_yaw) < 0) and by_yaw[-1] < 0.15
    assert np.all(np.diff(by_roll) < 0)
    with pytest.raises(MissingDetectionError):
        scorer.score(_crops(112, 1))
