"""Graded synthetic degradations: monotone in severity, deterministic, dataset expansion."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from hf_fiqa.data.degradations import (
    DEGRADATION_LABELS,
    DEGRADATIONS,
    degradation_parameters,
    degrade,
    degrade_array,
    degrade_dataset,
)


@pytest.fixture(scope="module")
def photo():
    """A smooth gradient with edges and texture: blur, noise and JPEG all leave measurable traces."""
    y, x = np.mgrid[0:96, 0:112]
    base = np.stack([x * 2.0, y * 2.5, (x + y) * 1.2], axis=-1)
    base[30:60, 40:80] = [230, 40, 60]
    rng = np.random.default_rng(1)
    base += rng.normal(0, 6, base.shape)
    return np.clip(base, 0, 255).astype(np.uint8)


def _sharpness(rgb):
    g = rgb.astype(np.float64).mean(axis=2)
    return np.abs(np.diff(g, axis=0)).mean() + np.abs(np.diff(g, axis=1)).mean()


def test_blur_and_downscale_remove_detail_monotonically(photo):
    for kind in ("gaussian_blur", "downscale"):
        values = [_sharpness(photo)] + [_sharpness(degrade_array(photo, kind, s)) for s in range(1, 6)]
        assert all(a > b for a, b in zip(values, values[1:])), (kind, values)


def test_noise_grows_with_severity_and_is_seeded(photo):
    diffs = [np.std(degrade_array(photo, "gaussian_noise", s).astype(float) - photo) for s in range(1, 6)]
    assert all(a < b for a, b in zip(diffs, diffs[1:]))
    a = degrade_array(photo, "gaussian_noise", 3, seed=1, key=7)
    assert np.array_equal(a, degrade_array(photo, "gaussian_noise", 3, seed=1, key=7))
    assert not np.array_equal(a, degrade_array(photo, "gaussian_noise", 3, seed=2, key=7))
    assert not np.array_equal(a, degrade_array(photo, "gaussian_noise", 3, seed=1, key=8))


def test_jpeg_error_grows_and_exposure_moves_brightness(photo):
    errors = [np.abs(degrade_array(photo, "jpeg", s).astype(float) - photo).mean() for s in range(1, 6)]
    assert all(a < b for a, b in zip(errors, errors[1:]))
    under = [degrade_array(photo, "underexposure", s).mean() for s in range(1, 6)]
    over = [degrade_array(photo, "overexposure", s).mean() for s in range(1, 6)]
    assert photo.mean() > under[0] and all(a > b for a, b in zip(under, under[1:]))
    assert photo.mean() < over[0] and all(a < b for a, b in zip(over, over[1:]))


def test_occlusion_and_misalignment_grow_with_severity_and_are_seeded(photo):
    covered = [np.mean(np.any(degrade_array(photo, "occlusion", s, key=3) != photo, axis=2)) for s in range(1, 6)]
    assert all(a < b for a, b in zip(covered, covered[1:])), covered
    assert 0.05 < covered[0] and covered[-1] < 0.5
    moved = [np.abs(degrade_array(photo, "misalignment", s, key=3).astype(float) - photo).mean() for s in range(1, 6)]
    assert all(a < b for a, b in zip(moved, moved[1:])), moved
    for kind in ("occlusion", "misalignment"):
        a = degrade_array(photo, kind, 3, seed=1, key=7)
        assert np.array_equal(a, degrade_array(photo, kind, 3, seed=1, key=7))
        assert not np.array_equal(a, degrade_array(photo, kind, 3, seed=1, key=8))


def test_shapes_kept_and_bad_arguments(photo):
    for kind in DEGRADATIONS:
        assert degrade_array(photo, kind, 5).shape == photo.shape
    with pytest.raises(ValueError, match="unknown degradation"):
        degrade_array(photo, "motion_blur", 1)
    with pytest.raises(ValueError, match="severity"):
        degrade_array(photo, "jpeg", 6)
    assert set(degradation_parameters()) == set(DEGRADATIONS)
    img = degrade(Image.fromarray(photo), "gaussian_blur", 2)
    assert img.size == (112, 96) and img.mode == "RGB"


def test_degrade_dataset_expands_rows(photo):
    import datasets

    buf = io.BytesIO()
    Image.fromarray(photo).save(buf, format="PNG")
    ds = datasets.Dataset.from_dict(
        {"image": [{"bytes": buf.getvalue(), "path": None}] * 3, "name": ["a", "b", "c"]},
        features=datasets.Features({"image": datasets.Image(), "name": datasets.Value("string")}),
    )
    out = degrade_dataset(ds, types=("jpeg", "gaussian_noise"), severities=(1, 4), seed=3, keep_original=True)
    assert len(out) == 3 * (1 + 2 * 2)
    assert out.column_names == ["image", "source_index", "degradation", "severity"]
    assert out.features["degradation"].names == list(DEGRADATION_LABELS)
    rows = out.remove_columns("image").to_list()
    assert sorted({r["source_index"] for r in rows}) == [0, 1, 2]
    assert {(DEGRADATION_LABELS[r["degradation"]], r["severity"]) for r in rows} == {
        ("none", 0), ("jpeg", 1), ("jpeg", 4), ("gaussian_noise", 1), ("gaussian_noise", 4)}
    original = out[0]["image"]
    assert np.array_equal(np.asarray(original), photo)  # kept originals are stored losslessly
    # Same seed -> same noise; the noise depends on the source index.
    again = degrade_dataset(ds, types=("gaussian_noise",), severities=(4,), seed=3)
    first = np.asarray(again[0]["image"])
    assert np.array_equal(first, degrade_array(photo, "gaussian_noise", 4, seed=3, key=0))
    assert not np.array_equal(first, np.asarray(again[1]["image"]))
