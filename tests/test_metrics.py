"""Evaluation metrics: correlation, EDC/pAUC, pairs, baselines, reports and the CLI."""

from __future__ import annotations

import argparse
import json
import math

import cv2
import numpy as np
import pytest
from scipy import stats

from hf_fiqa.faces.types import AlignedFace, DetectedFace
from hf_fiqa.metrics.report import fiqa_markdown, write_fiqa_report
from hf_fiqa.metrics import (
    build_pairs,
    correlation_table,
    edc_curve,
    evaluate_fiqa,
    fm_edc,
    fnm_edc,
    ideal_area,
    logistic4,
    pair_similarities,
    partial_area,
    threshold_for_fmr,
    threshold_for_fnmr,
)
from hf_fiqa.commands import evaluate as metric_commands
from hf_fiqa.scorers import (
    DetectorConfidenceScorer,
    FaceSizeScorer,
    InterEyeDistanceScorer,
    MissingDetectionError,
    RandomScorer,
    SharpnessScorer,
    make_baseline,
    QualityScorer,
)

# ---------------------------------------------------------------- correlation


def test_correlations_agree_with_scipy():
    rng = np.random.default_rng(1)
    x = rng.normal(size=300)
    y = 2.0 * x + rng.normal(size=300)
    table = correlation_table(x, y)
    assert table["n"] == 300
    assert table["srcc"] == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    assert table["krcc"] == pytest.approx(stats.kendalltau(x, y).statistic, abs=1e-12)
    assert table["plcc_raw"] == pytest.approx(stats.pearsonr(x, y).statistic, abs=1e-12)
    assert table["rmse_raw"] == pytest.approx(np.sqrt(np.mean((x - y) ** 2)), abs=1e-12)
    # A fitted monotone mapping never fits worse than the raw predictions' linear relation.
    assert table["plcc_fitted"] >= abs(table["plcc_raw"]) - 1e-9


@pytest.mark.parametrize("params", [(90.0, 10.0, 0.5, 0.1), (5.0, 80.0, -1.0, 0.4)])
def test_logistic_fit_recovers_known_sigmoid(params):
    rng = np.random.default_rng(2)
    x = rng.uniform(-2.0, 2.0, size=400) if params[2] < 0 else rng.uniform(0.0, 1.0, size=400)
    y = logistic4(x, *params) + rng.normal(scale=0.05, size=x.shape)
    table = correlation_table(x, y)
    assert table["fit"] == "logistic4"
    assert table["plcc_fitted"] > 0.999
    assert table["plcc_fitted"] > abs(table["plcc_raw"])
    assert table["rmse_fitted"] < 0.1
    assert table["rmse_fitted"] < table["rmse_raw"]


def test_logistic_fit_falls_back_to_line(monkeypatch):
    import scipy.optimize

    def fail(*args, **kwargs):
        raise RuntimeError("Optimal parameters not found")

    monkeypatch.setattr(scipy.optimize, "curve_fit", fail)
    x = np.arange(10, dtype=float)
    y = 3.0 * x + np.sin(x)
    table = correlation_table(x, y)
    assert table["fit"] == "linear"
    assert table["plcc_fitted"] == pytest.approx(table["plcc_raw"], abs=1e-12)


def test_correlation_input_validation():
    with pytest.raises(ValueError, match="pred has 3 values but mos has 4"):
        correlation_table([1, 2, 3], [1, 2, 3, 4])
    with pytest.raises(ValueError, match="mos holds 1 NaN"):
        correlation_table([1, 2, 3, 4], [1, 2, float("nan"), 4])
    with pytest.raises(ValueError, match="at least 3"):
        correlation_table([1, 2], [2, 1])
    with pytest.warns(RuntimeWarning, match="pred is constant"):
        table = correlation_table([5, 5, 5, 5], [1, 2, 3, 4])
    assert math.isnan(table["srcc"]) and math.isnan(table["plcc_fitted"])
    assert table["rmse_raw"] == pytest.approx(np.sqrt(np.mean(np.square([4, 3, 2, 1]))))


# ---------------------------------------------------------------- EDC


def _tie_case():
    # Pair qualities with ties; errors (score < 0.5) at positions 0 and 2.
    q = np.array([1, 1, 2, 3, 3, 4], dtype=float)
    s = np.array([0.1, 0.9, 0.2, 0.8, 0.7, 0.6])
    return q, s


def test_edc_hand_computed_with_ties():
    q, s = _tie_case()
    res = fnm_edc(s, q, threshold=0.5, discard_limit=0.5)
    # Ties at quality 1 go together: no point at 1/6. Kept errors: 2/6, 1/4, 0/3, 0/1, then (1, 0).
    np.testing.assert_allclose(res.discard_fractions, [0, 2 / 6, 3 / 6, 5 / 6, 1.0])
    np.testing.assert_allclose(res.errors, [2 / 6, 1 / 4, 0, 0, 0])
    assert res.e0 == pytest.approx(1 / 3)
    # Stepwise area to 0.5: 1/3 * 1/3 + 1/4 * 1/6.
    assert res.pauc == pytest.approx(11 / 72)
    assert res.ideal_pauc == pytest.approx((1 / 3) ** 2 / 2)
    assert res.pauc_minus_ideal == pytest.approx(11 / 72 - 1 / 18)
    assert res.n_pairs == 6
    # Input order must not matter, ties included.
    perm = np.array([1, 0, 4, 2, 5, 3])
    again = fnm_edc(s[perm], q[perm], threshold=0.5, discard_limit=0.5)
    np.testing.assert_allclose(again.errors, res.errors)


def test_pauc_limits_and_ideal():
    q, s = _tie_case()
    x, y = edc_curve(s < 0.5, q)
    assert partial_area(x, y, 0.0) == 0.0
    assert partial_area(x, y, 0.4) == pytest.approx(1 / 3 * 1 / 3 + 1 / 4 * (0.4 - 1 / 3))
    assert partial_area(x, y, 1.0) == pytest.approx(1 / 3 * 1 / 3 + 1 / 4 * 1 / 6)
    assert fnm_edc(s, q, threshold=0.5, discard_limit=0.0).pauc == 0.0
    # Ideal area: the whole triangle once L >= e0, a trapezoid below.
    assert ideal_area(0.1, 0.2) == pytest.approx(0.005)
    assert ideal_area(0.3, 0.2) == pytest.approx(0.045 - 0.005)
    assert ideal_area(0.3, 0.0) == 0.0
    with pytest.raises(ValueError, match="discard limit"):
        partial_area(x, y, 1.5)


def test_perfect_ordering_reaches_zero_at_error_fraction():
    rng = np.random.default_rng(3)
    m, n_err = 1000, 100
    scores = np.where(np.arange(m) < n_err, 0.1, 0.9)
    qualities = np.where(np.arange(m) < n_err, rng.uniform(0, 1, m), rng.uniform(2, 3, m))
    res = fnm_edc(scores, qualities, threshold=0.5, discard_limit=0.2)
    x, y = res.discard_fractions, res.errors
    assert res.e0 == pytest.approx(0.1)
    assert np.all(y[x < 0.1] > 0)
    assert np.all(y[x >= 0.1 - 1e-12] == 0)
    assert np.all(np.diff(y) <= 1e-15)  # monotone for a perfect ordering
    # Close to, and never below, the ideal area.
    assert 0.0 <= res.pauc_minus_ideal < 0.001
    random_order = fnm_edc(scores, rng.permutation(qualities), threshold=0.5, discard_limit=0.2)
    assert res.pauc < random_order.pauc / 3


def test_random_ordering_stays_flat():
    rng = np.random.default_rng(4)
    m = 200_000
    scores = rng.normal(size=m)
    res = fnm_edc(scores, rng.random(m), start_fnmr=0.1, discard_limit=0.2)
    x, y = res.discard_fractions, res.errors
    assert res.e0 == pytest.approx(0.1, abs=1e-5)
    assert np.max(np.abs(y[x <= 0.5] - res.e0)) < 0.01
    assert res.pauc == pytest.approx(res.e0 * 0.2, rel=0.03)


def test_sample_qualities_with_pairs_use_minimum():
    sample_q = np.array([5.0, 1.0, 3.0, 4.0])
    pairs = np.array([[0, 1], [2, 3], [0, 3]])
    scores = np.array([0.2, 0.9, 0.8])
    res = fnm_edc(scores, sample_q, pairs=pairs, threshold=0.5, discard_limit=0.5)
    direct = fnm_edc(scores, [1.0, 3.0, 4.0], threshold=0.5, discard_limit=0.5)
    np.testing.assert_array_equal(res.errors, direct.errors)
    np.testing.assert_array_equal(res.errors, [1 / 3, 0, 0, 0])


@pytest.mark.parametrize("target", [1e-1, 1e-2, 1e-3])
def test_fmr_threshold_is_at_most_target(target):
    rng = np.random.default_rng(5)
    continuous = rng.normal(size=20_000)
    t = threshold_for_fmr(continuous, target)
    accepted = np.count_nonzero(continuous >= t.value)
    assert accepted == math.floor(target * continuous.size + 1e-9)
    assert t.fmr == accepted / continuous.size <= target
    # Lowest such threshold: the next impostor score down would exceed the target.
    below = np.max(continuous[continuous < t.value])
    assert np.count_nonzero(continuous >= below) / continuous.size > target
    # Heavy ties: the tied block at the boundary is rejected together, FMR stays under target.
    tied = np.round(continuous, 1)
    t2 = threshold_for_fmr(tied, target)
    assert np.count_nonzero(tied >= t2.value) / tied.size <= target
    assert np.count_nonzero(tied >= np.max(tied[tied < t2.value])) / tied.size > target


def test_fnmr_threshold_and_argument_checks():
    rng = np.random.default_rng(6)
    genuine = rng.normal(size=1000)
    t = threshold_for_fnmr(genuine, 0.1)
    assert np.count_nonzero(genuine < t.value) == 100
    assert t.fnmr == pytest.approx(0.1)
    res = fnm_edc(genuine, rng.random(1000), start_fnmr=0.1)
    assert res.e0 == pytest.approx(0.1) and res.threshold_source == "fnmr"
    impostor = rng.normal(-2, 1, size=5000)
    res = fnm_edc(genuine, rng.random(1000), impostor_scores=impostor, target_fmr=1e-2)
    assert res.fmr <= 1e-2 and res.threshold_source == "fmr"
    with pytest.raises(ValueError, match="exactly one"):
        fnm_edc(genuine, rng.random(1000), threshold=0.0, start_fnmr=0.1)
    with pytest.raises(ValueError, match="exactly one"):
        fnm_edc(genuine, rng.random(1000))
    with pytest.raises(ValueError, match="needs impostor_scores"):
        fnm_edc(genuine, rng.random(1000), target_fmr=1e-3)
    with pytest.raises(ValueError, match="1000 comparison scores but 999"):
        fnm_edc(genuine, rng.random(999), threshold=0.0)
    with pytest.raises(ValueError, match="NaN"):
        fnm_edc(genuine, np.full(1000, np.nan), threshold=0.0)


def test_fm_edc_starts_at_fmr():
    rng = np.random.default_rng(7)
    impostor = rng.normal(size=10_000)
    res = fm_edc(impostor, rng.random(10_000), target_fmr=1e-2)
    assert res.kind == "fm"
    assert res.e0 == pytest.approx(res.fmr) and res.e0 <= 1e-2
    assert res.errors[-1] == 0.0 and res.discard_fractions[-1] == 1.0


# ---------------------------------------------------------------- pairs


def test_build_pairs_enumerates_all_when_small():
    ids = np.array(["a", "a", "b", "b", "b", "c"])
    pairs = build_pairs(ids, max_impostors=None)
    gen = {tuple(p) for p in pairs.genuine.tolist()}
    assert gen == {(0, 1), (2, 3), (2, 4), (3, 4)}
    brute = {(i, j) for i in range(6) for j in range(i + 1, 6) if ids[i] != ids[j]}
    assert {tuple(p) for p in pairs.impostor.tolist()} == brute
    assert pairs.n_impostor_total == len(brute) and not pairs.impostors_sampled


def test_build_pairs_samples_impostors_seeded():
    rng = np.random.default_rng(8)
    ids = rng.integers(0, 2000, size=100_000)  # ~5e9 impostor pairs: must not be enumerated
    pairs = build_pairs(ids, max_impostors=20_000, seed=3)
    imp = pairs.impostor
    assert pairs.impostors_sampled and imp.shape == (20_000, 2)
    assert np.all(imp[:, 0] < imp[:, 1])
    assert np.all(ids[imp[:, 0]] != ids[imp[:, 1]])
    assert np.unique(imp[:, 0] * ids.size + imp[:, 1]).size == imp.shape[0]
    np.testing.assert_array_equal(build_pairs(ids, max_impostors=20_000, seed=3).impostor, imp)
    assert np.all(ids[pairs.genuine[:, 0]] == ids[pairs.genuine[:, 1]])
    sizes = np.bincount(ids)
    assert pairs.genuine.shape[0] == int(np.sum(sizes * (sizes - 1) // 2))
    # Asking for most of the pairs of a small set goes through enumeration, still exact count.
    small = build_pairs(np.repeat(np.arange(10), 3), max_impostors=400, seed=0)
    assert small.impostor.shape == (400, 2) and small.n_impostor_total == 405


def test_pair_similarities_match_cosine():
    rng = np.random.default_rng(9)
    emb = rng.normal(size=(50, 16)) * rng.uniform(0.5, 5, size=(50, 1))
    pairs = np.array([[0, 1], [2, 3], [4, 49], [10, 10]])
    sims = pair_similarities(emb, pairs, chunk_size=3)
    expect = [emb[a] @ emb[b] / np.linalg.norm(emb[a]) / np.linalg.norm(emb[b]) for a, b in pairs]
    np.testing.assert_allclose(sims, expect, atol=1e-6)
    emb[7] = 0
    with pytest.raises(ValueError, match=r"rows \[7\] are all zeros"):
        pair_similarities(emb, pairs)


# ---------------------------------------------------------------- baselines


def _face(crop: np.ndarray, eyes=((30.0, 40.0), (70.0, 40.0)), box=(10, 20, 110, 150), score=0.9) -> AlignedFace:
    lm = np.array([*eyes, (50, 60), (35, 80), (65, 80)], dtype=np.float32)
    return AlignedFace(crop=crop, face=DetectedFace(box=np.array(box, dtype=np.float32), landmarks=lm, score=score))


def test_baseline_scorers():
    rng = np.random.default_rng(10)
    sharp = rng.integers(0, 256, size=(112, 112, 3), dtype=np.uint8)
    blurred = cv2.GaussianBlur(sharp, (0, 0), 2.0)
    faces = [_face(sharp), _face(blurred, eyes=((0, 0), (30, 40)), box=(0, 0, 50, 80), score=0.4)]

    for scorer in (InterEyeDistanceScorer(), FaceSizeScorer(), DetectorConfidenceScorer(), SharpnessScorer(), RandomScorer()):
        assert isinstance(scorer, QualityScorer)
        out = scorer.score(faces)
        assert out.dtype == np.float64 and out.shape == (2,)

    sharpness = SharpnessScorer().score(faces)
    assert sharpness[1] < sharpness[0] / 5
    np.testing.assert_allclose(InterEyeDistanceScorer().score(faces), [40.0, 50.0])
    np.testing.assert_allclose(FaceSizeScorer().score(faces), [100.0, 50.0])
    np.testing.assert_allclose(DetectorConfidenceScorer().score(faces), [0.9, 0.4], rtol=1e-6)
    np.testing.assert_array_equal(RandomScorer(seed=1).score(faces), RandomScorer(seed=1).score(faces))
    assert make_baseline("face_size").name == "face_size"
    with pytest.raises(ValueError, match="unknown baseline"):
        make_baseline("nope")


def test_baselines_needing_detection_reject_aligned_inputs():
    crop = np.zeros((112, 112, 3), dtype=np.uint8)
    faces = [_face(crop), AlignedFace(crop=crop)]
    for scorer in (InterEyeDistanceScorer(), FaceSizeScorer(), DetectorConfidenceScorer()):
        with pytest.raises(MissingDetectionError, match=r"position\(s\) \[1\]"):
            scorer.score(faces)
    assert SharpnessScorer().score(faces).shape == (2,)


# ---------------------------------------------------------------- reports and CLI


def _synthetic_faces(n_ids: int = 60, per_id: int = 6, seed: int = 11):
    """Embeddings whose noise grows as the (known) quality falls."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_ids, 32))
    ids = np.repeat(np.arange(n_ids), per_id)
    quality = rng.uniform(0.0, 1.0, size=ids.size)
    noise = rng.normal(size=(ids.size, 32)) * (0.2 + 2.5 * (1.0 - quality))[:, None]
    emb = centres[ids] + noise
    return emb, ids, quality, rng.random(ids.size)


def test_evaluate_fiqa_ranks_oracle_above_random(tmp_path):
    emb, ids, oracle, random_q = _synthetic_faces()
    with_nan = oracle.copy()
    with_nan[:3] = np.nan
    report = evaluate_fiqa(
        emb, ids, {"oracle": oracle, "random": random_q, "partial": with_nan},
        max_impostors=None, include_fm_edc=True, progress=False,
    )
    assert report.n_genuine == 60 * 15 and report.n_impostor == report.n_impostor_total
    # 360*359/2 - 900 = 63,720 impostor pairs: FMR 1e-3 and 1e-2 supported, 1e-4 skipped.
    assert set(report.thresholds) == {"FMR=1e-03", "FMR=1e-02", "FNMR=0.1"}
    assert any("1e-04 skipped" in n for n in report.notes)
    for label, by_method in report.curves.items():
        assert by_method["oracle"].pauc < by_method["random"].pauc, label
        assert len({r.threshold for r in by_method.values()}) == 1  # one threshold shared by all methods
    assert report.curves["FNMR=0.1"]["oracle"].e0 == pytest.approx(0.1, abs=1e-3)
    assert report.nan_qualities == {"partial": 3}
    written = write_fiqa_report(report, tmp_path)
    data = json.loads((tmp_path / "pauc.json").read_text())
    assert data["n_genuine_pairs"] == 900 and len(data["results"]) == 3 * 3 + 2 * 3
    row = next(r for r in data["results"] if r["method"] == "oracle" and r["threshold_id"] == "FNMR=0.1")
    assert row["pauc"] == pytest.approx(report.curves["FNMR=0.1"]["oracle"].pauc)
    md = (tmp_path / "pauc.md").read_text()
    assert "starting FNMR 0.1" in md and "900 pairs behind each figure" in md and "| oracle |" in md
    pngs = [p for k, p in written.items() if k.startswith("png:")]
    assert len(pngs) == 5 and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    curves = np.load(tmp_path / "edc_curves.npz")
    assert "fnm__FNMR_0.1__oracle__x" in curves.files


def _run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="hf-fiqa")
    metric_commands.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_evaluate_fiqa_end_to_end(tmp_path, capsys):
    emb, ids, oracle, random_q = _synthetic_faces(n_ids=40, per_id=5)
    np.save(tmp_path / "emb.npy", emb.astype(np.float32))
    (tmp_path / "ids.csv").write_text("identity\n" + "\n".join(f"person{i}" for i in ids) + "\n")
    np.save(tmp_path / "oracle.npy", oracle)
    np.save(tmp_path / "random.npy", random_q)
    out = tmp_path / "report"
    rc = _run_cli([
        "evaluate-fiqa", "--embeddings", str(tmp_path / "emb.npy"), "--identities", str(tmp_path / "ids.csv"),
        "--quality", f"oracle={tmp_path / 'oracle.npy'}", "--quality", f"random={tmp_path / 'random.npy'}",
        "--fnmr", "0.2", "--discard-limit", "0.3", "--max-impostors", "5000", "--output-dir", str(out),
    ])
    assert rc == 0
    data = json.loads((out / "pauc.json").read_text())
    assert data["n_impostor_pairs"] == 5000 and data["impostors_sampled"] is True
    assert data["discard_limit"] == 0.3
    assert set(data["thresholds"]) == {"FMR=1e-03", "FMR=1e-02", "FNMR=0.2"}
    assert (out / "pauc.md").is_file() and (out / "edc_fnm_FNMR_0.2.png").is_file()
    assert (out / "edc_fnm_FMR_1e-03.png").is_file()
    assert "pAUC=" in capsys.readouterr().out

    rc = _run_cli([
        "evaluate-fiqa", "--embeddings", str(tmp_path / "emb.npy"), "--identities", str(tmp_path / "ids.csv"),
        "--quality", f"short={tmp_path / 'missing.npy'}", "--output-dir", str(out),
    ])
    assert rc == 2 and "missing.npy: no such file" in capsys.readouterr().err


def test_cli_evaluate_iqa_end_to_end(tmp_path, capsys):
    rng = np.random.default_rng(12)
    names = [f"img{i:03d}.jpg" for i in range(80)]
    mos = rng.uniform(1, 5, size=80)
    pred = mos + rng.normal(scale=0.3, size=80)
    (tmp_path / "mos.csv").write_text("image_name,MOS\n" + "".join(f"{n},{m}\n" for n, m in zip(names, mos)))
    # Predictions hold paths, one fewer image, in another order.
    rows = [f"/data/koniq/{names[i]},{pred[i]}\n" for i in rng.permutation(79)]
    (tmp_path / "pred.csv").write_text("path,score\n" + "".join(rows))
    out = tmp_path / "iqa"
    rc = _run_cli([
        "evaluate-iqa", "--predictions", str(tmp_path / "pred.csv"), "--mos", str(tmp_path / "mos.csv"),
        "--pred-key-col", "path", "--basename", "--output-dir", str(out),
    ])
    assert rc == 0
    table = json.loads((out / "correlation.json").read_text())
    assert table["n"] == 79 and table["n_unmatched_mos"] == 1
    assert table["srcc"] == pytest.approx(stats.spearmanr(pred[:79], mos[:79]).statistic, abs=1e-12)
    assert (out / "scatter.png").read_bytes()[:4] == b"\x89PNG"
    assert "SRCC" in (out / "correlation.md").read_text()

    # Headerless MANIQA-style label list; without --basename nothing matches -> clear error.
    (tmp_path / "labels.txt").write_text("".join(f"{n}\t{m}\n" for n, m in zip(names, mos)))
    rc = _run_cli([
        "evaluate-iqa", "--predictions", str(tmp_path / "pred.csv"), "--mos", str(tmp_path / "labels.txt"),
        "--pred-key-col", "path", "--output-dir", str(out),
    ])
    assert rc == 2 and "no keys in common" in capsys.readouterr().err
    rc = _run_cli([
        "evaluate-iqa", "--predictions", str(tmp_path / "pred.csv"), "--mos", str(tmp_path / "labels.txt"),
        "--pred-key-col", "path", "--basename", "--output-dir", str(out),
    ])
    assert rc == 2 and "--overwrite" in capsys.readouterr().err  # an earlier report is kept
    rc = _run_cli([
        "evaluate-iqa", "--predictions", str(tmp_path / "pred.csv"), "--mos", str(tmp_path / "labels.txt"),
        "--pred-key-col", "path", "--basename", "--output-dir", str(out), "--overwrite",
    ])
    assert rc == 0


def test_evaluate_fiqa_degenerate_label_sets():
    rng = np.random.default_rng(13)
    emb = rng.normal(size=(12, 8))
    with pytest.raises(ValueError, match="no genuine pairs"):
        evaluate_fiqa(emb, np.arange(12), {"q": rng.random(12)}, progress=False)
    with pytest.raises(ValueError, match="quality 'q' has 11 values but there are 12"):
        evaluate_fiqa(emb, np.zeros(12), {"q": rng.random(11)}, progress=False)
    one_person = evaluate_fiqa(emb, np.zeros(12), {"q": rng.random(12)}, progress=False)
    assert list(one_person.curves) == ["FNMR=0.1"] and one_person.n_impostor == 0
    assert one_person.curves["FNMR=0.1"]["q"].fmr is None
    assert any("no impostor pairs" in n for n in one_person.notes)
    assert "n/a" in fiqa_markdown(one_person)


def test_cli_evaluate_fiqa_from_embedding_parquet(tmp_path, capsys):
    """The embed job's Parquet (list column, identity, det_score; NaN rows for failed photos)."""
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    emb, ids, oracle, _ = _synthetic_faces(n_ids=30, per_id=4)
    emb = emb.astype(np.float32)
    emb[[5, 17]] = np.nan  # photos where no face was found
    table = pa.table({
        "identity": pa.array([f"id{i}" for i in ids]),
        "det_score": pa.array(oracle.astype(np.float32)),
        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1)), emb.shape[1]),
    })
    pq.write_table(table, tmp_path / "embeddings.parquet")
    np.save(tmp_path / "oracle.npy", oracle)
    out = tmp_path / "report"
    base = ["evaluate-fiqa", "--embeddings", str(tmp_path / "embeddings.parquet"), "--output-dir", str(out)]
    rc = _run_cli(base + ["--quality", f"det={tmp_path / 'embeddings.parquet'}:det_score",
                          "--quality", f"oracle={tmp_path / 'oracle.npy'}"])
    assert rc == 0, capsys.readouterr().err
    data = json.loads((out / "pauc.json").read_text())
    assert data["n_samples"] == 118 and data["n_dropped_samples"] == 2
    assert any("dropped 2 sample(s)" in n for n in data["notes"])
    det = [r["pauc"] for r in data["results"] if r["method"] == "det"]
    orc = [r["pauc"] for r in data["results"] if r["method"] == "oracle"]
    assert det == pytest.approx(orc, abs=1e-6)  # same qualities via two input routes (float32 in parquet)
    rc = _run_cli(base + ["--quality", f"oracle={tmp_path / 'oracle.npy'}", "--strict-embeddings"])
    assert rc == 2 and "NaN" in capsys.readouterr().err


# ---------------------------------------------------------------- gain toward ideal and identity bootstrap


def test_random_pauc_is_exact_expectation_of_stepwise_area():
    """Averaged over every ordering of a small set, the stepwise pAUC is exactly e0 * L, ties or not."""
    from itertools import permutations

    from hf_fiqa.metrics.edc import random_area

    scores = np.array([0.1, 0.9, 0.2, 0.8, 0.7, 0.6])  # errors (score < 0.5) at positions 0 and 2
    for base_q, limit in (([1, 2, 3, 4, 5, 6], 0.5), ([1, 1, 2, 3, 3, 4], 0.4), ([1, 1, 1, 2, 2, 2], 1.0)):
        paucs = [
            fnm_edc(scores, np.array(base_q, dtype=float)[list(p)], threshold=0.5, discard_limit=limit).pauc
            for p in permutations(range(6))
        ]
        assert np.mean(paucs) == pytest.approx(random_area(1 / 3, limit), abs=1e-12)
        assert np.mean(paucs) == pytest.approx(1 / 3 * limit, abs=1e-12)


def test_gain_is_zero_for_random_orderings_on_a_large_set():
    rng = np.random.default_rng(21)
    m = 200_000
    scores = rng.normal(size=m)
    res = fnm_edc(scores, rng.random(m), start_fnmr=0.1, discard_limit=0.2)
    assert res.random_pauc == pytest.approx(res.e0 * 0.2)
    assert abs(res.gain) < 0.03
    # Random qualities with heavy ties behave the same.
    tied = fnm_edc(scores, rng.integers(0, 20, m).astype(float), start_fnmr=0.1, discard_limit=0.2)
    assert abs(tied.gain) < 0.03


def test_gain_is_100_percent_for_the_ideal_ordering():
    from hf_fiqa.metrics.edc import gain_toward_ideal, oracle_area

    # Hand-computed oracle: M = 10, E = 2, L = 0.3: 2/10 * 0.1 + 1/9 * 0.1.
    assert oracle_area(2, 10, 0.3) == pytest.approx(0.02 + 0.1 / 9)
    assert oracle_area(0, 10, 0.3) == 0.0 and oracle_area(10, 10, 0.3) == pytest.approx(0.3)
    assert math.isnan(gain_toward_ideal(0.3, 0.3, 0.3))  # e0 = 1: every ordering is the same
    rng = np.random.default_rng(22)
    m = 5000
    scores = rng.normal(size=m)
    for limit, e0 in ((0.2, 0.1), (0.2, 0.35), (1.0, 0.1)):
        t = threshold_for_fnmr(scores, e0)
        error = (scores < t.value).astype(float)
        # quality = -error, ties among the errors (and non-errors) broken: errors go one by one.
        strict = -error + 1e-3 * rng.random(m)
        res = fnm_edc(scores, strict, threshold=t, discard_limit=limit)
        assert res.pauc == pytest.approx(res.oracle_pauc, abs=1e-15)
        assert res.gain == pytest.approx(1.0, abs=1e-9)
        assert res.oracle_pauc >= res.ideal_pauc  # the continuous triangle is out of reach
        # quality = -error exactly: the errors form one tie, discarded in a single step, so the
        # error holds e0 until x = e0 (ISO tie rule) and the gain falls short of 100 %.
        tied = fnm_edc(scores, -error, threshold=t, discard_limit=limit)
        assert tied.pauc == pytest.approx(res.e0 * min(res.e0, limit))
        assert tied.gain < 1.0
        # No ordering beats the oracle.
        for _ in range(5):
            other = fnm_edc(scores, strict + rng.normal(scale=0.5, size=m), threshold=t, discard_limit=limit)
            assert other.gain <= 1.0 + 1e-12


def test_weighted_pauc_equals_repeated_pairs():
    from hf_fiqa.metrics.bootstrap import weighted_paucs

    rng = np.random.default_rng(23)
    for m, decimals in ((60, 1), (400, None)):
        scores = rng.normal(size=m)
        q = rng.normal(size=m)
        q = np.round(q, decimals) if decimals is not None else q
        weights = rng.integers(0, 4, size=(20, m))
        weights[:5, : m // 2] = 0  # whole stretches missing, as when identities are not drawn
        for limit in (0.0, 0.2, 0.6, 1.0):
            got = weighted_paucs(scores < -0.5, q, weights, limit)
            expect = [
                fnm_edc(np.repeat(scores, w), np.repeat(q, w), threshold=-0.5, discard_limit=limit).pauc for w in weights
            ]
            np.testing.assert_allclose(got, expect, rtol=0, atol=1e-14)
        ones = weighted_paucs(scores < -0.5, q, np.ones(m), 0.2)
        assert ones == pytest.approx(fnm_edc(scores, q, threshold=-0.5, discard_limit=0.2).pauc, abs=1e-15)


def test_bootstrap_ci_excludes_zero_for_a_clearly_better_method(tmp_path):
    emb, ids, oracle, random_q = _synthetic_faces()
    report = evaluate_fiqa(
        emb, ids, {"oracle": oracle, "random": random_q}, fmr_targets=(1e-2,), max_impostors=20_000,
        progress=False, bootstrap=1000,
    )
    assert report.n_bootstrap == 1000 and report.n_bootstrap_identities == 60
    rows = {(r["threshold_id"], r["method"]): r for r in report.rows()}
    best = rows[("FMR=1e-02", "oracle")]
    assert best["best_other"] == "random"
    assert best["delta_pauc_vs_best_other"] == pytest.approx(
        report.curves["FMR=1e-02"]["oracle"].pauc - report.curves["FMR=1e-02"]["random"].pauc
    )
    assert best["delta_pauc_ci_low"] <= best["delta_pauc_vs_best_other"] <= best["delta_pauc_ci_high"] < 0
    assert best["ci_excludes_zero"] is True and best["ci_level"] == 0.95 and best["n_bootstrap"] == 1000
    worse = rows[("FMR=1e-02", "random")]
    assert worse["best_other"] == "oracle" and worse["delta_pauc_ci_low"] > 0 and worse["ci_excludes_zero"]
    assert best["gain_percent"] == pytest.approx(100 * best["gain"]) and best["gain"] > 0.3
    write_fiqa_report(report, tmp_path)
    data = json.loads((tmp_path / "pauc.json").read_text())
    assert data["bootstrap"]["n_resamples"] == 1000 and data["bootstrap"]["unit"] == "identity"
    row = next(r for r in data["results"] if r["method"] == "oracle" and r["threshold_id"] == "FMR=1e-02")
    for key in ("pauc", "pauc_minus_ideal", "ideal_pauc", "e0", "gain", "gain_percent", "random_pauc", "oracle_pauc",
                "best_other", "delta_pauc_vs_best_other", "delta_pauc_ci_low", "delta_pauc_ci_high",
                "ci_excludes_zero", "ci_level", "n_bootstrap"):
        assert key in row, key
    assert row["ci_excludes_zero"] is True
    md = (tmp_path / "pauc.md").read_text()
    assert "| gain % | best other | ΔpAUC vs best other | CI low | CI high | CI excludes 0 |" in md
    assert "identity-bootstrap" in md and "pAUC_random = e0 * L" in md


def test_bootstrap_ci_contains_zero_for_identical_methods_and_is_seeded():
    emb, ids, oracle, random_q = _synthetic_faces(n_ids=40, per_id=5)

    def run(quals, seed):
        rep = evaluate_fiqa(emb, ids, quals, fmr_targets=(1e-2,), max_impostors=20_000, progress=False,
                            bootstrap=200, seed=seed)
        return {(r["threshold_id"], r["method"]): r for r in rep.rows()}

    # a, b and c order the pairs identically: their pAUCs agree in every resample.
    same = run({"a": random_q, "b": random_q.copy(), "c": 3.0 * random_q + 1.0}, 0)
    for label in ("FMR=1e-02", "FNMR=0.1"):
        row = same[(label, "a")]
        assert row["best_other"] == "b" and row["delta_pauc_vs_best_other"] == 0.0
        assert row["delta_pauc_ci_low"] == row["delta_pauc_ci_high"] == 0.0
        assert row["ci_excludes_zero"] is False
    quals = {"oracle": oracle, "random": random_q}
    first, again, other_seed = run(quals, 0), run(quals, 0), run(quals, 1)
    keys = ("delta_pauc_ci_low", "delta_pauc_ci_high")
    assert all(first[k][c] == again[k][c] for k in first for c in keys)  # same seed, same intervals
    assert all(first[k][c] != other_seed[k][c] for k in first for c in keys)


def test_identity_counts_and_bootstrap_paucs():
    from hf_fiqa.metrics.bootstrap import bootstrap_paucs, identity_counts, weighted_paucs

    counts = identity_counts(30, 50, seed=4)
    assert counts.shape == (50, 30) and np.all(counts.sum(axis=1) == 30)
    np.testing.assert_array_equal(counts, identity_counts(30, 50, seed=4))
    assert not np.array_equal(counts, identity_counts(30, 50, seed=5))
    rng = np.random.default_rng(24)
    pair_identity = rng.integers(0, 30, size=700)
    q = np.round(rng.random(700), 2)
    err = rng.random(700) < 0.2
    got = bootstrap_paucs(pair_identity, {"q": q}, {"t": err}, 0.25, counts)["t"]["q"]
    np.testing.assert_allclose(got, weighted_paucs(err, q, counts[:, pair_identity], 0.25), rtol=0, atol=1e-15)


def test_cli_bootstrap_flag(tmp_path, capsys):
    emb, ids, oracle, random_q = _synthetic_faces(n_ids=40, per_id=5)
    np.save(tmp_path / "emb.npy", emb.astype(np.float32))
    np.save(tmp_path / "ids.npy", ids)
    np.save(tmp_path / "oracle.npy", oracle)
    np.save(tmp_path / "random.npy", random_q)
    base = [
        "evaluate-fiqa", "--embeddings", str(tmp_path / "emb.npy"), "--identities", str(tmp_path / "ids.npy"),
        "--quality", f"oracle={tmp_path / 'oracle.npy'}", "--quality", f"random={tmp_path / 'random.npy'}",
        "--fmr", "1e-2", "--max-impostors", "5000",
    ]
    assert _run_cli(base + ["--output-dir", str(tmp_path / "off"), "--bootstrap", "0"]) == 0
    out = capsys.readouterr().out
    assert "gain=" in out and "dpAUC-vs-random=" in out and "CI95" not in out
    data = json.loads((tmp_path / "off" / "pauc.json").read_text())
    assert data["bootstrap"]["n_resamples"] == 0
    for row in data["results"]:
        assert row["delta_pauc_ci_low"] is None and row["ci_excludes_zero"] is None and row["n_bootstrap"] == 0
        assert row["delta_pauc_vs_best_other"] is not None and row["gain"] is not None
    assert "No bootstrap intervals" in (tmp_path / "off" / "pauc.md").read_text()

    assert _run_cli(base + ["--output-dir", str(tmp_path / "on"), "--bootstrap", "300"]) == 0
    captured = capsys.readouterr()
    assert "CI95=[" in captured.out and "bootstrap: 300 resamples of 40 identities" in captured.err
    data = json.loads((tmp_path / "on" / "pauc.json").read_text())
    assert all(r["n_bootstrap"] == 300 and r["delta_pauc_ci_low"] is not None for r in data["results"])
    with pytest.raises(SystemExit):
        _run_cli(base + ["--output-dir", str(tmp_path / "bad"), "--bootstrap", "-1"])


def test_cli_help_states_the_library_defaults():
    """The evaluate-fiqa options default to None and take the library's defaults; their help must say the same."""
    from hf_fiqa.metrics.bootstrap import DEFAULT_BOOTSTRAP
    from hf_fiqa.metrics.edc import DEFAULT_DISCARD_LIMIT
    from hf_fiqa.metrics.evaluation import DEFAULT_FMRS, DEFAULT_START_FNMRS
    from hf_fiqa.metrics.pairs import DEFAULT_MAX_IMPOSTORS

    parser = argparse.ArgumentParser(prog="hf-fiqa")
    metric_commands.register(parser.add_subparsers(dest="command", required=True))
    fiqa = next(a for a in parser._actions if a.dest == "command").choices["evaluate-fiqa"]
    helps = {a.dest: a.help for a in fiqa._actions}
    assert all(a.default is None for a in fiqa._actions
               if a.dest in ("fmr", "fnmr", "discard_limit", "max_impostors", "bootstrap"))
    assert f"default {DEFAULT_FMRS[0]:.0e}".replace("e-0", "e-") in helps["fmr"]
    assert f"default {DEFAULT_START_FNMRS[0]:g}" in helps["fnmr"]
    assert f"default {DEFAULT_DISCARD_LIMIT:g}" in helps["discard_limit"]
    assert f"default {DEFAULT_MAX_IMPOSTORS:,}" in helps["max_impostors"]
    assert f"default {DEFAULT_BOOTSTRAP}" in helps["bootstrap"]
