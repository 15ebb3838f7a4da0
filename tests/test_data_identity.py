"""Identity folders / path,identity CSVs: the real celeba-wild-ids and lfw sets, and fixtures."""

from __future__ import annotations

import csv
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from hf_fiqa.data.errors import DatasetFormatError, SkipLog
from hf_fiqa.data.identity_folder import load_identity_folder


def test_celeba_wild_ids_from_labels_csv(shared):
    root = shared / "data" / "celeba-wild-ids"
    with open(root / "labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    ds = load_identity_folder(root)
    assert len(ds) == len(rows) == 1200
    names = ds.features["identity"].names
    assert len(names) == 150 and names == sorted(names)
    per_identity = Counter(ds["identity"])
    assert set(per_identity.values()) == {8}
    first = ds[0]
    assert first["path"] == rows[0]["path"]
    assert names[first["identity"]] == rows[0]["identity"]
    assert first["image"].mode == "RGB"


def test_lfw_labels(shared):
    ds = load_identity_folder(shared / "data" / "lfw" / "labels.csv", check_images="none")
    assert len(ds) == 6733 and ds.features["identity"].num_classes == 610


def _folder(tmp_path):
    root = tmp_path / "people"
    rng = np.random.default_rng(0)
    for person, n in (("alice", 2), ("bob", 3), ("carol", 1)):
        (root / person).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(root / person / f"{i}.png")
    (root / "README.txt").write_text("stray file next to identities")
    (root / "bob" / "notes.txt").write_text("not an image")
    return root


def test_identity_folder_layout(tmp_path):
    root = _folder(tmp_path)
    ds = load_identity_folder(root)
    assert len(ds) == 6
    assert ds.features["identity"].names == ["alice", "bob", "carol"]
    assert Counter(ds.features["identity"].int2str(i) for i in ds["identity"]) == {"alice": 2, "bob": 3, "carol": 1}
    assert sorted(ds["path"])[0] == "alice/0.png"


def test_identity_csv_relative_paths_and_errors(tmp_path):
    root = _folder(tmp_path)
    csv_path = root / "pairs" / "list.csv"
    csv_path.parent.mkdir()
    lines = ["path,identity", "../alice/0.png,alice"]
    csv_path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetFormatError, match=r"list\.csv line 2: path '\.\./alice/0\.png' must be relative"):
        load_identity_folder(csv_path)
    csv_path = root / "labels.csv"
    csv_path.write_text("path,identity\nalice/0.png,alice\nbob/9.png,bob\nbob/0.png,\n")
    with pytest.raises(DatasetFormatError, match=r"labels\.csv line 4"):
        load_identity_folder(root)  # labels.csv in the folder wins over the folder layout
    skipped = SkipLog()
    ds = load_identity_folder(root, skip_errors=True, skipped=skipped)
    assert len(ds) == 1 and skipped.count == 2  # empty identity + missing bob/9.png
    assert any("bob/9.png" in item for item, _ in skipped.skipped)
