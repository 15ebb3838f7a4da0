"""Publishing offline: write the repo folder, load it back with ``datasets``; the CLI; a mocked push."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import yaml
from PIL import Image

from hf_fiqa.data.cards import CARDS, KONIQ10K, TID2013
from hf_fiqa.data.publish import publish_dataset, write_dataset_repo


def _small_dict(tmp_path):
    import datasets

    rng = np.random.default_rng(0)
    paths = []
    for i in range(7):
        p = tmp_path / "src" / f"{i}.jpg"
        p.parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (10, 12, 3), dtype=np.uint8)).save(p)
        paths.append(str(p))
    feats = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["low", "high"]),
                               "mos": datasets.Value("float64")})
    make = lambda idx, split: datasets.Dataset.from_dict(  # noqa: E731
        {"image": [paths[i] for i in idx], "label": [i % 2 for i in idx], "mos": [i / 2 for i in idx]},
        features=feats, split=split)
    return datasets.DatasetDict({"train": make(range(5), "train"), "test": make(range(5, 7), "test")}), paths


def _front_matter(readme):
    text = readme.read_text()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1]), text


def test_write_repo_and_load_back(tmp_path):
    import datasets

    dd, paths = _small_dict(tmp_path)
    out = publish_dataset(dd, "someone/tiny", local_dir=tmp_path / "repo", card=KONIQ10K, push=False,
                          max_shard_size=2000)
    files = sorted(p.name for p in (out / "data").iterdir())
    assert any(f.startswith("train-00000-of-") for f in files) and "test-00000-of-00001.parquet" in files
    assert len([f for f in files if f.startswith("train-")]) > 1  # tiny shard size -> several shards
    meta, text = _front_matter(out / "README.md")
    assert meta["license"] == "other" and meta["license_name"] == KONIQ10K.license_name
    assert meta["configs"][0]["data_files"] == [{"split": "train", "path": "data/train-*"},
                                                {"split": "test", "path": "data/test-*"}]
    assert {s["name"]: s["num_examples"] for s in meta["dataset_info"]["splits"]} == {"train": 5, "test": 2}
    assert "Hosu" in text and "## Citation" in text

    # The source images can go away: the shards hold the bytes.
    for p in paths:
        (tmp_path / "src" / p.split("/")[-1]).unlink()
    loaded = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "hf_cache"))
    assert {k: len(v) for k, v in loaded.items()} == {"train": 5, "test": 2}
    assert loaded["train"].features == dd["train"].features
    assert loaded["train"][3]["image"].size == (12, 10)
    assert loaded["test"]["mos"] == [2.5, 3.0]
    raw = datasets.load_dataset("parquet", data_dir=str(out / "data"), cache_dir=str(tmp_path / "hf_cache"))
    assert raw["train"].features["label"].names == ["low", "high"]


def test_rewriting_removes_stale_splits(tmp_path):
    dd, _ = _small_dict(tmp_path)
    repo = write_dataset_repo(dd, tmp_path / "repo", TID2013)
    write_dataset_repo(dd["train"], repo, TID2013)  # a Dataset becomes the only split
    assert sorted(p.name.split("-")[0] for p in (repo / "data").iterdir()) == ["train"]


def test_push_uses_hub_api(tmp_path, monkeypatch):
    import huggingface_hub

    calls = []

    class FakeApi:
        def __init__(self, token=None):
            calls.append(("init", token))

        def create_repo(self, repo_id, repo_type, private, exist_ok):
            calls.append(("create", repo_id, repo_type, private))

        def upload_folder(self, folder_path, repo_id, repo_type, commit_message):
            from pathlib import Path

            names = sorted(str(p.relative_to(folder_path)) for p in Path(folder_path).rglob("*") if p.is_file())
            calls.append(("upload", repo_id, repo_type, names))

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    dd, _ = _small_dict(tmp_path)
    assert publish_dataset(dd, "someone/tiny", card=CARDS["lfw"]) is None  # temporary folder, removed
    assert calls[1] == ("create", "someone/tiny", "dataset", True)
    assert calls[2][0] == "upload" and "README.md" in calls[2][3]
    assert "data/test-00000-of-00001.parquet" in calls[2][3]
    with pytest.raises(ValueError, match="local_dir"):
        publish_dataset(dd, "someone/tiny", push=False)


def test_cli_convert_identity_folder(tmp_path, capsys):
    import datasets

    from hf_fiqa.commands import dataset as commands

    root = tmp_path / "people"
    rng = np.random.default_rng(0)
    for person in ("ann", "ben"):
        (root / person).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(root / person / f"{i}.jpg")
    (root / "ben" / "1.jpg").write_bytes(b"broken")
    parser = argparse.ArgumentParser(prog="hf-fiqa")
    commands.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["dataset", "convert", "identity-folder", str(root), "--output", str(tmp_path / "o"),
                              "--card", "lfw"])
    assert args.func(args) == 1
    assert "ben/1.jpg" in capsys.readouterr().err
    args = parser.parse_args(["dataset", "convert", "identity-folder", str(root), "--output", str(tmp_path / "o"),
                              "--card", "lfw", "--skip-errors"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "rows: train=3" in out and "skipped 1 item" in out
    ds = datasets.load_dataset(str(tmp_path / "o"), split="train", cache_dir=str(tmp_path / "hf_cache"))
    assert len(ds) == 3 and ds.features["identity"].names == ["ann", "ben"]
    meta, _ = _front_matter(tmp_path / "o" / "README.md")
    assert meta["pretty_name"] == CARDS["lfw"].pretty_name


def test_package_exports_are_lazy():
    import subprocess
    import sys

    code = (
        "import sys, hf_fiqa.data, hf_fiqa.commands.dataset\n"
        "assert 'datasets' not in sys.modules, 'datasets imported eagerly'\n"
        "from hf_fiqa.data import load_koniq10k, publish_dataset, RecordIOReader\n"
        "assert callable(load_koniq10k) and callable(publish_dataset)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    import hf_fiqa.data as data

    for name in data.__all__:
        assert getattr(data, name) is not None
