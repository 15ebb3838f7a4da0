"""FFHQ loader: nested 00000/ folders, optional ffhq-dataset-v2.json metadata."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from hf_fiqa.data.errors import DatasetFormatError, SkipLog
from hf_fiqa.data.ffhq import load_ffhq

NUMBERS = (0, 1, 999, 1000, 1001, 69999)


def _ffhq_root(tmp_path, with_json=True):
    root = tmp_path / "images1024x1024"
    rng = np.random.default_rng(0)
    for n in NUMBERS:
        folder = root / f"{n // 1000 * 1000:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(folder / f"{n:05d}.png")
    (root / "LICENSE.txt").write_text("not an image")
    if with_json:
        meta = {
            str(n): {
                "category": "validation" if n >= 60000 else "training",
                "metadata": {"photo_url": f"https://flickr/{n}", "photo_title": "t", "author": f"a{n}",
                             "country": "" if n % 2 else "Finland", "license": "Attribution License"},
                "image": {"file_path": f"images1024x1024/{n // 1000 * 1000:05d}/{n:05d}.png",
                          "pixel_size": [1024, 1024],
                          "face_landmarks": [[float(i), float(i + n % 7)] for i in range(68)]},
            }
            for n in NUMBERS + (5,)  # an entry without an image is fine
        }
        (tmp_path / "ffhq-dataset-v2.json").write_text(json.dumps(meta))
    return root


def test_ffhq_with_metadata_has_official_splits(tmp_path):
    root = _ffhq_root(tmp_path)
    dd = load_ffhq(root)  # the json beside the image folder is found
    assert len(dd["train"]) == 5 and len(dd["validation"]) == 1
    assert dd["validation"][0]["image_number"] == 69999
    row = dd["train"].filter(lambda r: r["image_number"] == 1000)[0]
    assert row["path"] == "01000/01000.png"
    assert row["author"] == "a1000" and row["country"] == "Finland"
    assert len(row["landmarks_1024"]) == 68 and row["landmarks_1024"][3] == [3.0, 3.0 + 1000 % 7]
    assert row["image"].size == (16, 16)
    assert dd["train"][1]["country"] is None  # empty country -> None


def test_ffhq_without_metadata_is_all_train(tmp_path):
    root = _ffhq_root(tmp_path, with_json=False)
    dd = load_ffhq(root)
    assert list(dd) == ["train"] and sorted(dd["train"]["image_number"]) == list(NUMBERS)
    assert "license" not in dd["train"].column_names


def test_ffhq_image_without_metadata_entry(tmp_path):
    root = _ffhq_root(tmp_path)
    meta_path = tmp_path / "ffhq-dataset-v2.json"
    meta = json.loads(meta_path.read_text())
    del meta["999"]
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(DatasetFormatError, match="00999.png"):
        load_ffhq(root)
    skipped = SkipLog()
    dd = load_ffhq(root, skip_errors=True, skipped=skipped)
    assert skipped.count == 1 and len(dd["train"]) == 4


def test_ffhq_bad_names_and_duplicates(tmp_path):
    root = _ffhq_root(tmp_path, with_json=False)
    (root / "00000" / "cover.png").write_bytes((root / "00000" / "00000.png").read_bytes())
    with pytest.raises(DatasetFormatError, match="cover.png"):
        load_ffhq(root)
    (root / "00000" / "cover.png").unlink()
    (root / "extra").mkdir()
    (root / "extra" / "00001.png").write_bytes((root / "00000" / "00001.png").read_bytes())
    with pytest.raises(DatasetFormatError, match="image number 1 also at"):
        load_ffhq(root)


def test_ffhq_corrupt_png_header(tmp_path):
    root = _ffhq_root(tmp_path, with_json=False)
    (root / "00000" / "00001.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    with pytest.raises(DatasetFormatError, match="00001.png"):
        load_ffhq(root)
