"""KonIQ-10k loader: the real label files from ../shared, and small fixtures in the official format."""

from __future__ import annotations

import csv
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from hf_fiqa.data.errors import DatasetFormatError, SkipLog
from hf_fiqa.data.koniq import load_koniq10k, load_koniq10k_labels, read_maniqa_label_list

SCORES_HEADER = ["image_name", "c1", "c2", "c3", "c4", "c5", "c_total", "MOS", "SD", "MOS_zscore"]
SETS_HEADER = ["image_name", "c1", "c2", "c3", "c4", "c5", "c_total", "MOS", "SD", "set"]


def _koniq_root(tmp_path, n=9, sets=("training", "training", "training", "validation", "test")):
    """A KonIQ-shaped folder: 1024x768/<id>.jpg, the official scores CSV and the split CSV."""
    root = tmp_path / "koniq10k"
    (root / "1024x768").mkdir(parents=True)
    rng = np.random.default_rng(0)
    scores, splits, expected = [], [], {}
    for i in range(n):
        name = f"{826373 + i * 1111}.jpg"
        Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(root / "1024x768" / name)
        counts = [i % 3, 1, 2 + i % 2, 3, 1]
        total = sum(counts)
        mos = sum((k + 1) * c for k, c in enumerate(counts)) / total
        sd = float(np.std(np.repeat(np.arange(1, 6), counts), ddof=1))
        zscore = 40.0 + i
        split = sets[i % len(sets)]
        scores.append([name, *counts, total, f"{mos:.9f}", f"{sd:.9f}", f"{zscore:.4f}"])
        splits.append([name, *[c / total for c in counts], total, zscore, sd, split])
        expected[name] = {"mos": mos, "counts": counts, "split": split, "zscore": zscore, "sd": sd}
    for fname, header, rows in (("koniq10k_scores_and_distributions.csv", SCORES_HEADER, scores),
                                ("koniq10k_distributions_sets.csv", SETS_HEADER, splits)):
        with open(root / fname, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(header)
            w.writerows(rows)
    return root, expected


def test_real_koniq_label_file_parses_all_rows(shared):
    """All 10,073 rows of the real split file: official set sizes, counts, and the 1-5 MOS
    recomputed from the rating fractions equals MANIQA's label list."""
    labels_dir = shared / "data" / "iqa-labels"
    rows = load_koniq10k_labels(labels_dir / "koniq10k" / "koniq10k_distributions_sets.csv")
    assert len(rows) == 10073
    assert Counter(r["set"] for r in rows) == {"training": 7058, "validation": 1000, "test": 2015}
    assert all(sum(r["distribution"]) == r["num_ratings"] for r in rows)
    mos = np.array([r["mos"] for r in rows])
    assert 1.0 <= mos.min() and mos.max() <= 5.0
    zscores = np.array([r["mos_zscore"] for r in rows])
    assert zscores.min() > 0 and zscores.max() < 100
    # MOS and z-score MOS are two scales of the same ratings: strongly rank-correlated.
    assert np.corrcoef(np.argsort(np.argsort(mos)), np.argsort(np.argsort(zscores)))[0, 1] > 0.99
    maniqa = read_maniqa_label_list(labels_dir / "maniqa-splits" / "koniq10k_label.txt")
    assert len(maniqa) == 10073
    assert max(abs(maniqa[r["image_name"]] - r["mos"]) for r in rows) < 1e-6
    # SD is the sample standard deviation of the 1-5 ratings.
    r0 = rows[0]
    ratings = np.repeat(np.arange(1, 6), r0["distribution"])
    assert r0["mos_std"] == pytest.approx(ratings.std(ddof=1), abs=1e-6)


def test_real_kadid_list_parses(shared):
    labels = read_maniqa_label_list(shared / "data" / "iqa-labels" / "maniqa-splits" / "kadid10k_label.txt")
    assert len(labels) == 10125
    assert all(1.0 <= v <= 5.0 for v in labels.values())


def test_load_koniq10k_fixture_splits_and_columns(tmp_path):
    root, expected = _koniq_root(tmp_path)
    dd = load_koniq10k(root)
    assert set(dd) == {"train", "validation", "test"}
    assert sum(len(d) for d in dd.values()) == len(expected)
    official = {"training": "train", "validation": "validation", "test": "test"}
    for split, ds in dd.items():
        for row in ds:
            exp = expected[row["image_name"]]
            assert official[exp["split"]] == split
            assert row["mos"] == pytest.approx(exp["mos"], abs=1e-8)
            assert row["mos_zscore"] == pytest.approx(exp["zscore"])
            assert row["distribution"] == exp["counts"]
            assert row["num_ratings"] == sum(exp["counts"])
            assert row["image"].size == (32, 24)
    assert dd["train"].features["distribution"].length == 5


def test_koniq_from_split_file_alone_matches_scores_file(tmp_path):
    root, _ = _koniq_root(tmp_path)
    from_scores = load_koniq10k_labels(root / "koniq10k_scores_and_distributions.csv")
    from_sets = load_koniq10k_labels(root / "koniq10k_distributions_sets.csv")
    for a, b in zip(from_scores, from_sets):
        assert a["image_name"] == b["image_name"]
        assert a["distribution"] == b["distribution"]
        assert a["mos"] == pytest.approx(b["mos"], abs=1e-8)
        assert a["mos_zscore"] == pytest.approx(b["mos_zscore"])


def test_koniq_missing_image_raises_naming_it_or_is_skipped(tmp_path):
    root, expected = _koniq_root(tmp_path)
    victim = sorted(expected)[2]
    (root / "1024x768" / victim).unlink()
    with pytest.raises(DatasetFormatError, match=victim):
        load_koniq10k(root)
    skipped = SkipLog()
    dd = load_koniq10k(root, skip_errors=True, skipped=skipped)
    assert skipped.count == 1 and victim in skipped.skipped[0][0]
    assert sum(len(d) for d in dd.values()) == len(expected) - 1


def test_koniq_malformed_line_names_file_and_line(tmp_path):
    root, expected = _koniq_root(tmp_path)
    path = root / "koniq10k_scores_and_distributions.csv"
    lines = path.read_text().splitlines()
    lines[3] = lines[3].replace(",", ";", 2)  # line 4 of the file loses two fields
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetFormatError, match=r"koniq10k_scores_and_distributions\.csv line 4"):
        load_koniq10k_labels(path)
    skipped = SkipLog()
    rows = load_koniq10k_labels(path, skip_errors=True, skipped=skipped)
    assert len(rows) == len(expected) - 1 and skipped.count == 1


def test_koniq_non_numeric_mos_is_rejected(tmp_path):
    root, _ = _koniq_root(tmp_path)
    path = root / "koniq10k_scores_and_distributions.csv"
    lines = path.read_text().splitlines()
    fields = lines[1].split(",")
    fields[7] = "abc"
    lines[1] = ",".join(fields)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetFormatError, match=r"line 2.*MOS"):
        load_koniq10k_labels(path)


def test_koniq_corrupt_image_detected_when_decoding(tmp_path):
    root, expected = _koniq_root(tmp_path)
    victim = sorted(expected)[0]
    data = (root / "1024x768" / victim).read_bytes()
    (root / "1024x768" / victim).write_bytes(data[: len(data) // 3])  # truncated JPEG
    with pytest.raises(DatasetFormatError, match=victim):
        load_koniq10k(root, check_images="decode")
    skipped = SkipLog()
    dd = load_koniq10k(root, check_images="decode", skip_errors=True, skipped=skipped)
    assert skipped.count == 1
    assert victim not in {n for d in dd.values() for n in d["image_name"]}


def test_koniq_maniqa_list_only_gets_seeded_random_split(tmp_path):
    root, expected = _koniq_root(tmp_path, n=20)
    (root / "koniq10k_scores_and_distributions.csv").unlink()
    (root / "koniq10k_distributions_sets.csv").unlink()
    with open(root / "koniq10k_label.txt", "w") as fh:
        for name, exp in expected.items():
            fh.write(f"{name}\t{exp['mos']:.9f}\n")
    a = load_koniq10k(root, split_seed=3)
    b = load_koniq10k(root, split_seed=3)
    assert {k: sorted(v["image_name"]) for k, v in a.items()} == {k: sorted(v["image_name"]) for k, v in b.items()}
    assert sum(len(d) for d in a.values()) == 20
    row = a["train"][0]
    assert row["distribution"] is None and row["mos_zscore"] is None
    assert row["mos"] == pytest.approx(expected[row["image_name"]]["mos"], abs=1e-8)
