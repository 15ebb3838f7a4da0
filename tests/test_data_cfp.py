"""CFP as a Dataset with a pose column, and its FF/FP verification protocol (a fixture in the official layout,
and the real copy in ../shared when present)."""

from __future__ import annotations

import pytest
from PIL import Image

from hf_fiqa.data import DatasetFormatError, load_cfp, read_cfp_pairs


def _write_cfp(root):
    """Three identities, 2 frontal + 1 profile each; identity 003 is listed by the protocol but removed from
    labels.csv (as ../shared removes CFP identities that are CelebA evaluation identities)."""
    lines = ["path,identity,name,pose,lfw_identity"]
    frontal, profile = [], []
    for ident in ("001", "002", "003"):
        for pose, count, bucket in (("frontal", 2, frontal), ("profile", 1, profile)):
            for k in range(1, count + 1):
                rel = f"images/{ident}/{pose}/{k:02d}.jpg"
                bucket.append(rel)
                if ident != "003":
                    (root / rel).parent.mkdir(parents=True, exist_ok=True)
                    Image.new("RGB", (40, 50), (100 + k, 90, 80)).save(root / rel)
                    lines.append(f"{rel},{ident},Person {ident},{pose},{'Some_One' if ident == '001' else ''}")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    proto = root / "protocol"
    proto.mkdir()
    (proto / "Pair_list_F.txt").write_text("".join(f"{i} ../Data/Images/{p[7:]}\n" for i, p in enumerate(frontal, 1)))
    (proto / "Pair_list_P.txt").write_text("".join(f"{i} ../Data/Images/{p[7:]}\n" for i, p in enumerate(profile, 1)))
    # frontal numbering: 1,2 = 001; 3,4 = 002; 5,6 = 003. profile: 1 = 001, 2 = 002, 3 = 003
    for protocol, same, diff in (("FF", ["1,2", "3,4", "5,6"], ["1,3", "2,5"]), ("FP", ["1,1", "3,2", "5,3"], ["1,2", "4,3"])):
        fold = proto / "Split" / protocol / "01"
        fold.mkdir(parents=True)
        (fold / "same.txt").write_text("\n".join(same) + "\n")
        (fold / "diff.txt").write_text("\n".join(diff) + "\n")
    return root


def test_cfp_dataset_has_pose_and_identity(tmp_path):
    ds = load_cfp(_write_cfp(tmp_path))
    assert len(ds) == 6 and ds.features["pose"].names == ["frontal", "profile"]
    assert sorted(set(ds["identity"])) == [0, 1] and ds.features["identity"].names == ["001", "002"]
    assert [ds.features["pose"].int2str(p) for p in ds["pose"]].count("profile") == 2
    assert ds[0]["image"].size == (40, 50) and ds[0]["lfw_identity"] == "Some_One"


def test_cfp_protocol_pairs_drop_removed_identities(tmp_path):
    root = _write_cfp(tmp_path)
    ff, dropped = read_cfp_pairs(root, "FF")
    assert dropped == 2 and [(p.path_a, p.path_b, p.same) for p in ff] == [
        ("images/001/frontal/01.jpg", "images/001/frontal/02.jpg", True),
        ("images/002/frontal/01.jpg", "images/002/frontal/02.jpg", True),
        ("images/001/frontal/01.jpg", "images/002/frontal/01.jpg", False)]
    fp, dropped = read_cfp_pairs(root, "FP")
    assert dropped == 2 and all(p.path_b.split("/")[2] == "profile" for p in fp) and len(fp) == 3
    with pytest.raises(ValueError, match="protocol"):
        read_cfp_pairs(root, "PP")


def test_malformed_protocol_and_labels_are_named(tmp_path):
    root = _write_cfp(tmp_path)
    (root / "protocol" / "Split" / "FP" / "01" / "same.txt").write_text("1;1\n")
    with pytest.raises(DatasetFormatError, match="same.txt:1"):
        read_cfp_pairs(root, "FP")
    (root / "labels.csv").write_text("path,identity,name,pose\nimages/001/frontal/01.jpg,001,A,sideways\n")
    with pytest.raises(DatasetFormatError, match="pose"):
        load_cfp(root)
    (root / "images" / "001" / "frontal" / "01.jpg").unlink()
    (root / "labels.csv").write_text("path,identity,name,pose\nimages/001/frontal/01.jpg,001,A,frontal\n")
    with pytest.raises(DatasetFormatError, match="01.jpg"):
        load_cfp(root)


def test_the_shared_copy(shared):
    root = shared / "data" / "cfp"
    if not (root / "labels.csv").is_file():
        pytest.skip(f"CFP not found at {root}")
    ds = load_cfp(root)
    assert len(ds) == 6916 and len(ds.features["identity"].names) == 494
    for protocol in ("FF", "FP"):
        pairs, dropped = read_cfp_pairs(root, protocol)
        assert len(pairs) + dropped == 7000 and 0 < dropped < 300


def test_dataset_convert_writes_a_repo_with_a_card(tmp_path):
    """``hf-fiqa dataset convert cfp``: Parquet shards and a dataset card naming CFP's terms."""
    from datasets import load_dataset

    from hf_fiqa.cli import main as cli_main

    root = _write_cfp(tmp_path / "cfp")
    out = tmp_path / "repo"
    assert cli_main(["dataset", "convert", "cfp", str(root), "--output", str(out)]) == 0
    card = (out / "README.md").read_text()
    assert "Frontal-Profile" in card and "research use only" in card
    ds = load_dataset(str(out), split="train")
    assert len(ds) == 6 and ds.features["pose"].names == ["frontal", "profile"]
