"""TID2013 loader on a small tree in the official layout (mixed file-name case, as in real copies)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from hf_fiqa.data.errors import DatasetFormatError, SkipLog
from hf_fiqa.data.tid2013 import DISTORTION_NAMES, load_tid2013, parse_tid2013_name, tid2013_reference_splits

REFS = (1, 2, 3, 7, 25)
DISTORTIONS = (1, 8, 24)
LEVELS = (1, 5)


def _bmp(path, seed):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)).save(path, format="BMP")


def _tid_root(tmp_path):
    root = tmp_path / "tid2013"
    (root / "distorted_images").mkdir(parents=True)
    (root / "reference_images").mkdir()
    lines = []
    for ref in REFS:
        _bmp(root / "reference_images" / f"I{ref:02d}.BMP", ref)
        for d in DISTORTIONS:
            for lv in LEVELS:
                name = f"i{ref:02d}_{d:02d}_{lv}.bmp"
                # Real archives mix cases: store some files upper-case while the label file says lower.
                stored = name.upper() if (ref + d) % 2 else name
                _bmp(root / "distorted_images" / stored, ref * 1000 + d * 10 + lv)
                lines.append(f"{(ref + d + lv) % 9 + 0.123:.5f} {name}")
    (root / "mos_with_names.txt").write_text("\n".join(lines) + "\n")
    return root, len(lines)


def test_parse_name_any_case():
    assert parse_tid2013_name("i01_01_1.bmp") == (1, 1, 1)
    assert parse_tid2013_name("I25_24_5.BMP") == (25, 24, 5)
    with pytest.raises(ValueError):
        parse_tid2013_name("i26_01_1.bmp")
    with pytest.raises(ValueError):
        parse_tid2013_name("i01_25_1.bmp")


def test_distortion_names_are_the_24_official_types():
    assert len(DISTORTION_NAMES) == 24
    assert DISTORTION_NAMES[0] == "additive gaussian noise"
    assert DISTORTION_NAMES[7] == "gaussian blur"
    assert DISTORTION_NAMES[9] == "jpeg compression"
    assert DISTORTION_NAMES[22] == "chromatic aberrations"
    assert DISTORTION_NAMES[23] == "sparse sampling and reconstruction"


def test_load_tid2013_columns_and_split_by_reference(tmp_path):
    root, n = _tid_root(tmp_path)
    dd = load_tid2013(root, seed=0)
    assert sum(len(d) for d in dd.values()) == n
    refs_by_split = {split: set(ds["reference_id"]) for split, ds in dd.items()}
    splits = list(refs_by_split)
    for i, a in enumerate(splits):
        for b in splits[i + 1:]:
            assert not refs_by_split[a] & refs_by_split[b], "a reference image appears in two splits"
    assignment = tid2013_reference_splits(0)
    for split, ds in dd.items():
        assert all(assignment[r] == split for r in ds["reference_id"])
    row = dd[splits[0]][0]
    assert DISTORTION_NAMES[row["distortion"]] == dd[splits[0]].features["distortion"].int2str(row["distortion"])
    ref, dist, level = parse_tid2013_name(row["image_name"])
    assert (row["reference_id"], row["distortion"] + 1, row["level"]) == (ref, dist, level)
    assert row["reference_image"].lower() == f"reference_images/i{ref:02d}.bmp"
    assert row["image"].size == (16, 12)


def test_tid2013_split_is_deterministic_and_seed_dependent():
    a, b = tid2013_reference_splits(5), tid2013_reference_splits(5)
    assert a == b and len(a) == 25
    assert [list(a.values()).count(s) for s in ("train", "validation", "test")] == [15, 5, 5]
    assert any(tid2013_reference_splits(s) != a for s in range(6, 10))


def test_tid2013_embedded_reference_is_an_image(tmp_path):
    root, _ = _tid_root(tmp_path)
    dd = load_tid2013(root, embed_reference=True)
    split = next(iter(dd))
    assert dd[split][0]["reference_image"].size == (16, 12)


def test_tid2013_missing_image_and_malformed_line(tmp_path):
    root, n = _tid_root(tmp_path)
    victim = next(p for p in (root / "distorted_images").iterdir() if p.name.lower() == "i02_08_5.bmp")
    victim.unlink()
    with pytest.raises(DatasetFormatError, match=r"i02_08_5\.bmp"):
        load_tid2013(root)
    skipped = SkipLog()
    dd = load_tid2013(root, skip_errors=True, skipped=skipped)
    assert skipped.count == 1 and sum(len(d) for d in dd.values()) == n - 1

    labels = root / "mos_with_names.txt"
    lines = labels.read_text().splitlines()
    lines[4] = "not-a-number i01_01_1.bmp"
    labels.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetFormatError, match=r"mos_with_names\.txt line 5"):
        load_tid2013(root, skip_errors=False)


def test_tid2013_missing_reference_is_reported(tmp_path):
    root, _ = _tid_root(tmp_path)
    (root / "reference_images" / "I07.BMP").unlink()
    with pytest.raises(DatasetFormatError, match="I07.BMP"):
        load_tid2013(root)
