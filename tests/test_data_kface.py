"""K-Face loader on a small tree shaped like the AIHub release (see hf_fiqa.data.kface)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from hf_fiqa.data.errors import DatasetFormatError, SkipLog
from hf_fiqa.data.kface import ACCESSORIES, CAMERAS, LIGHTINGS, load_kface, parse_kface_bbox

IDS = ("19062421", "19101513")
COMBOS = [("S001", "L1", "E01"), ("S001", "L30", "E03"), ("S006", "L7", "E02")]
CAMS = ("C1", "C7", "C20")


def box_file(path, box):
    header = ["# capture info line %d" % i for i in range(1, 8)]
    parts = ["10\t20\t5\t5", "30\t20\t5\t5", "20\t30\t6\t6", "18\t40\t12\t5"]
    path.write_text("\n".join(header + ["\t".join(map(str, box))] + parts) + "\n")


def make_kface(root, tiers=("High", "Low")):
    rng = np.random.default_rng(0)
    n = 0
    for tier in tiers:
        for ident in IDS:
            for acc, light, expr in COMBOS:
                folder = root / tier / ident / acc / light / expr
                folder.mkdir(parents=True)
                for cam in CAMS:
                    Image.fromarray(rng.integers(0, 255, (20, 16, 3), dtype=np.uint8)).save(folder / f"{cam}.jpg")
                    if acc == "S001":
                        box_file(folder / f"{cam}.txt", (2, 3, 10, 12))
                    n += 1
    return n


def test_load_kface_attributes(tmp_path):
    root = tmp_path / "kface"
    n = make_kface(root)
    ds = load_kface(root)
    assert len(ds) == n
    f = ds.features
    assert f["identity"].names == sorted(IDS)
    assert f["resolution"].names == ["High", "Middle", "Low"]
    assert len(f["lighting"].names) == 30 and len(f["camera"].names) == 20 and len(f["accessory"].names) == 6
    rows = ds.remove_columns("image").to_list()
    row = next(r for r in rows if r["path"] == "Low/19101513/S001/L30/E03/C20.jpg")
    assert f["identity"].int2str(row["identity"]) == "19101513"
    assert (ACCESSORIES[row["accessory"]], LIGHTINGS[row["lighting"]], CAMERAS[row["camera"]]) == ("S001", "L30", "C20")
    assert f["expression"].int2str(row["expression"]) == "E03"
    assert f["resolution"].int2str(row["resolution"]) == "Low"
    assert row["bbox"] == [2, 3, 10, 12]
    no_box = next(r for r in rows if "/S006/" in r["path"])
    assert no_box["bbox"] is None
    high = load_kface(root, resolutions=("High",))
    assert len(high) == n // 2


def test_kface_single_tier_root_and_identity_parent(tmp_path):
    root = tmp_path / "kface"
    n = make_kface(root, tiers=("Middle",))
    assert len(load_kface(root / "Middle")) == n
    (root / "Middle").rename(root / "faces")
    with pytest.raises(DatasetFormatError, match="resolution="):
        load_kface(root / "faces")
    ds = load_kface(root / "faces", resolution="middle")
    assert set(ds["resolution"]) == {1}


def test_kface_strict_layout_errors(tmp_path):
    root = tmp_path / "kface"
    make_kface(root, tiers=("High",))
    bad = root / "High" / IDS[0] / "S001" / "L31"
    bad.mkdir()
    with pytest.raises(DatasetFormatError, match="L31.*unexpected lighting folder"):
        load_kface(root)
    skipped = SkipLog()
    load_kface(root, skip_errors=True, skipped=skipped)
    assert skipped.count == 1
    bad.rmdir()
    stray = root / "High" / IDS[1] / "S001" / "L1" / "E01" / "C21.jpg"
    stray.write_bytes(b"")
    with pytest.raises(DatasetFormatError, match="C21.jpg"):
        load_kface(root)
    stray.unlink()
    box = root / "High" / IDS[1] / "S001" / "L1" / "E01" / "C7.txt"
    box.write_text("only one line\n")
    with pytest.raises(DatasetFormatError, match=r"C7.txt: box file has 1 lines"):
        load_kface(root)


def test_parse_bbox_line(tmp_path):
    path = tmp_path / "C1.txt"
    box_file(path, (100, 200, 300, 400))
    assert parse_kface_bbox(path) == [100, 200, 300, 400]
    lines = path.read_text().splitlines()
    lines[7] = "100\t200\tabc\t400"
    path.write_text("\n".join(lines))
    with pytest.raises(DatasetFormatError, match="C1.txt line 8"):
        parse_kface_bbox(path)
