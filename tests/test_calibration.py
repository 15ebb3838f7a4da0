"""Calibrated quality and reference-set pseudo-labels: the pieces of the SDD-FIQA recipe."""

from __future__ import annotations

import numpy as np
import pytest

from hf_fiqa.labels.reference import reference_pseudo_labels
from hf_fiqa.metrics.calibration import (discard_table, fit_quality_calibration, genuine_pair_rejections,
                                         threshold_at_fmr)


def test_logistic_calibration_recovers_the_failure_model():
    rng = np.random.default_rng(0)
    scores = rng.uniform(0, 100, 4000)
    comparisons = rng.integers(5, 20, scores.size)
    p_fail = 1.0 / (1.0 + np.exp(-(3.0 - 0.08 * scores)))
    failures = rng.binomial(comparisons, p_fail)
    fit = fit_quality_calibration(scores, failures, comparisons, meaning="test")
    assert fit["slope"] == pytest.approx(-0.08, rel=0.05) and fit["intercept"] == pytest.approx(3.0, rel=0.05)
    with pytest.raises(ValueError, match="both failed and successful"):
        fit_quality_calibration(scores, np.zeros_like(failures), comparisons)


def test_calibration_weights_count_a_sample_as_its_copies():
    """Weight 3 on a sample is the same fit as that sample written three times (the main job weighs each person
    equally); a weight of 0 drops the sample."""
    rng = np.random.default_rng(1)
    scores = rng.uniform(0, 100, 500)
    failures = rng.binomial(2, 1.0 / (1.0 + np.exp(-(2.0 - 0.05 * scores))))
    comparisons = np.full(500, 2)
    weights = rng.integers(0, 4, 500).astype(float)
    repeat = weights.astype(int)
    weighted = fit_quality_calibration(scores, failures, comparisons, weights=weights)
    copied = fit_quality_calibration(np.repeat(scores, repeat), np.repeat(failures, repeat),
                                     np.repeat(comparisons, repeat))
    assert weighted["slope"] == pytest.approx(copied["slope"], rel=1e-6)
    assert weighted["intercept"] == pytest.approx(copied["intercept"], rel=1e-6)
    assert weighted["failure_rate"] == pytest.approx(copied["failure_rate"], rel=1e-9)
    with pytest.raises(ValueError, match="weights"):
        fit_quality_calibration(scores, failures, comparisons, weights=-weights - 1)


def _faces(n_ids: int = 40, per_id: int = 6, seed: int = 1):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_ids, 16))
    ids = np.repeat(np.arange(n_ids), per_id).astype(str)
    noise = rng.uniform(0.1, 2.0, ids.size)  # per-face noise: the true (inverse) quality
    emb = centres[ids.astype(int)] + rng.normal(size=(ids.size, 16)) * noise[:, None]
    return emb, ids, noise


def test_pair_rejections_and_discard_table_follow_the_noise():
    emb, ids, noise = _faces()
    threshold = threshold_at_fmr(emb, ids, 1e-2)
    pairs, rejected = genuine_pair_rejections(emb, ids, threshold)
    assert len(pairs) == 40 * 15 and (ids[pairs[:, 0]] == ids[pairs[:, 1]]).all() and (pairs[:, 0] < pairs[:, 1]).all()
    # a pair is as good as its worse photo: the noisier of the two decides whether it is rejected
    worse = noise[pairs].max(axis=1)
    assert rejected[worse > np.quantile(worse, 0.75)].mean() > 3 * rejected[worse < np.quantile(worse, 0.25)].mean()
    table = discard_table(-noise, emb, ids, threshold, cutoffs=[-np.inf, np.quantile(-noise, 0.3)])
    assert table[0]["faces_removed_percent"] == 0 and table[0]["fnmr_after"] == table[0]["fnmr_before"]
    assert table[1]["faces_removed_percent"] == pytest.approx(30, abs=1) and table[1]["fnmr_after"] < table[1]["fnmr_before"]


def test_reference_labels_never_compare_a_copy_with_its_source():
    emb, ids, noise = _faces(n_ids=30, per_id=5)
    rows = np.arange(len(ids))
    copies = emb[:20] + 0.01  # near-duplicates of the first 20 photos
    probes = np.concatenate([emb, copies])
    sources = np.concatenate([rows, rows[:20]]).astype(str)
    labels = reference_pseudo_labels(probes, np.concatenate([ids, ids[:20]]), sources, emb, ids, rows.astype(str),
                                     num_pos=24, num_neg=24, repetitions=12, progress=False)
    assert labels.num_positives.tolist() == [4] * len(probes)  # own source excluded, for copies too
    # A near-duplicate compared with its source would look perfect; excluded, it gets its source's label.
    difference = np.abs(labels.quality[len(ids):] - labels.quality[:20])
    assert difference.mean() < 3.0 and np.corrcoef(labels.quality[len(ids):], labels.quality[:20])[0, 1] > 0.9
    assert np.corrcoef(labels.quality[: len(ids)], -noise)[0, 1] > 0.5
    assert 0.0 <= np.nanmin(labels.quality) and np.nanmax(labels.quality) <= 100.0


def test_calibration_bands_report_promised_and_observed_rejections():
    from hf_fiqa.metrics.calibration import calibration_bands, calibration_markdown

    quality = np.array([30.0, 40.0, 60.0, 92.0, 97.0, 100.0, np.nan])
    failed = np.array([5, 3, 1, 0, 1, 0, 4])
    counts = np.array([10, 10, 10, 4, 10, 10, 10])
    rows = calibration_bands(quality, failed, counts)
    by_low = {row["low"]: row for row in rows}
    assert by_low[0]["pairs"] == 2 and by_low[0]["observed_percent"] == pytest.approx(40.0)  # 8 of 20 failed
    assert by_low[0]["claimed_percent"] == pytest.approx(65.0)  # mean of 70 and 60
    assert by_low[95]["pairs"] == 2 and by_low[95]["observed_percent"] == pytest.approx(5.0)  # 100 is in the last band
    assert by_low[80]["pairs"] == 0 and np.isnan(by_low[80]["observed_percent"])
    assert sum(row["pairs"] for row in rows) == 6  # the NaN quality is left out
    assert "| 0-50 | 2 | 20 | 65.0 % | 40.0 % |" in calibration_markdown(rows, "check")


def test_calibration_bands_bound_the_observed_share_over_identity_resamples():
    from hf_fiqa.metrics.calibration import calibration_bands, calibration_markdown

    # Band 0-50: one pair of each of ten people, half of whom fail both comparisons; the rest score high.
    people = np.repeat(np.arange(10), 3)
    quality = np.full(len(people), 97.0)
    quality[::3] = 30.0
    failed = np.where(quality < 50, np.where(people % 2 == 0, 2, 0), 0).astype(float)
    counts = np.full(len(people), 2.0)
    rows = {row["low"]: row for row in calibration_bands(quality, failed, counts, identities=people.astype(str),
                                                          bootstrap=500, seed=1)}
    low = rows[0]
    assert low["observed_low"] < low["observed_percent"] < low["observed_high"]
    assert low["observed_high"] - low["observed_low"] > 30  # whose photos were drawn decides most of it
    assert calibration_bands(quality, failed, counts)[0].keys() == {"low", "high", "pairs", "comparisons",
                                                                     "claimed_percent", "observed_percent"}
    assert "observed, 95 % interval" in calibration_markdown(list(rows.values()), "check")
    with pytest.raises(ValueError, match="one identity per pair"):
        calibration_bands(quality, failed, counts, identities=people[:5].astype(str), bootstrap=10)


def test_the_pass_rate_says_whether_a_set_of_people_can_verify_the_promise():
    """A right quality passes a check on people who all behave alike; on ten people of whom half fail every
    comparison, which five were photographed decides the band, and a right quality fails the check most times."""
    from hf_fiqa.metrics.calibration import perfect_calibration_pass_rate

    def pairs(people: int, failing: np.ndarray):
        person = np.repeat(np.arange(people), 2)
        return np.full(len(person), 30.0), failing[person] if failing.ndim else np.tile([2.0, 0.0], people), \
            np.full(len(person), 2.0), person.astype(str)

    alike = pairs(200, np.array(0))  # every person: one pair fails both comparisons, one passes
    assert perfect_calibration_pass_rate(*alike, bootstrap=300) == 1.0
    split = pairs(10, np.where(np.arange(10) % 2 == 0, 2.0, 0.0))
    assert perfect_calibration_pass_rate(*split, bootstrap=300) < 0.5
    assert perfect_calibration_pass_rate(*split, tolerance=60.0, bootstrap=300) == 1.0  # any share is within 60
    with pytest.raises(ValueError, match="one identity per pair"):
        perfect_calibration_pass_rate(*split[:3], split[3][:4], bootstrap=10)


def test_combined_labels_average_each_recognizers_percentiles():
    from hf_fiqa.labels.combine import combine_labels, percentiles

    a = np.array([10.0, 20.0, 30.0, np.nan])
    b = np.array([300.0, 100.0, 200.0, 50.0])  # another scale: only the order counts
    np.testing.assert_allclose(percentiles(a)[:3], [100 / 6, 50, 500 / 6])
    combined = combine_labels({"a": a, "b": b})
    assert np.isnan(combined[3])
    np.testing.assert_allclose(combined[:3], [(100 / 6 + 87.5) / 2, (50 + 37.5) / 2, (500 / 6 + 62.5) / 2])
    with pytest.raises(ValueError, match="same faces"):
        combine_labels({"a": a, "b": b[:3]})


def test_reference_labels_draw_negatives_only_from_other_people():
    """A probe's negatives are other people's photos, drawn without replacement: with two people whose photos are
    all alike within and unlike across, every W is the same (every genuine similarity 1, every impostor one -1)."""
    base = np.eye(4, dtype=np.float32)[:2]
    emb = np.concatenate([np.repeat(base[:1], 30, axis=0), np.repeat(-base[:1], 30, axis=0)])
    ids = np.repeat(["a", "b"], 30)
    labels = reference_pseudo_labels(emb, ids, np.arange(60).astype(str), emb, ids, np.arange(60).astype(str),
                                     num_pos=5, num_neg=24, repetitions=4, progress=False)
    np.testing.assert_allclose(labels.wasserstein, 2.0)
    with pytest.raises(ValueError, match="num_neg"):
        reference_pseudo_labels(emb[:40], ids[:40], np.arange(40).astype(str), emb[:40], ids[:40],
                                np.arange(40).astype(str), num_neg=24, progress=False)
