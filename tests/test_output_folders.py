"""Commands that write a folder of outputs write it as a whole: an existing folder is refused (exit code 2, a
message naming it) unless --overwrite, which replaces it; an interrupted run leaves no half-written folder."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from hf_fiqa.atomic import StagedFolder, replace_dir
from hf_fiqa.cli import main as cli_main


def _leftovers(parent):
    """Hidden staging folders left beside the outputs."""
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def _refused(capsys, folder) -> None:
    err = capsys.readouterr().err
    assert str(folder) in err and "already exists" in err and "--overwrite" in err
    assert "Traceback" not in err


# -- evaluate-fiqa / evaluate-iqa ------------------------------------------------------------------------------------
@pytest.fixture()
def fiqa_inputs(tmp_path):
    rng = np.random.default_rng(0)
    ids = np.repeat(np.arange(12), 4)
    centres = rng.normal(size=(12, 8))
    np.save(tmp_path / "emb.npy", (centres[ids] + 0.5 * rng.normal(size=(len(ids), 8))).astype(np.float32))
    np.save(tmp_path / "ids.npy", ids)
    np.save(tmp_path / "q.npy", rng.random(len(ids)))
    return tmp_path


def _fiqa_args(inputs, out, *extra):
    return ["evaluate-fiqa", "--embeddings", str(inputs / "emb.npy"), "--identities", str(inputs / "ids.npy"),
            "--quality", f"q={inputs / 'q.npy'}", "--fnmr", "0.2", "--bootstrap", "0", "--output-dir", str(out), *extra]


def test_evaluate_fiqa_refuses_an_existing_folder_and_replaces_it_with_overwrite(fiqa_inputs, capsys):
    out = fiqa_inputs / "reports" / "run"
    assert cli_main(_fiqa_args(fiqa_inputs, out)) == 0
    assert (out / "pauc.json").is_file() and (out / "pauc.md").is_file()
    (out / "notes.txt").write_text("an earlier run's file")
    capsys.readouterr()

    assert cli_main(_fiqa_args(fiqa_inputs, out)) == 2
    _refused(capsys, out)
    assert (out / "notes.txt").is_file()  # nothing touched

    assert cli_main(_fiqa_args(fiqa_inputs, out, "--overwrite")) == 0
    assert (out / "pauc.json").is_file() and not (out / "notes.txt").exists()  # the whole folder replaced
    assert _leftovers(out.parent) == []


def test_evaluate_fiqa_accepts_an_empty_existing_folder(fiqa_inputs):
    out = fiqa_inputs / "empty"
    out.mkdir()
    assert cli_main(_fiqa_args(fiqa_inputs, out)) == 0
    assert (out / "pauc.json").is_file()


def test_interrupted_evaluate_fiqa_leaves_no_half_written_folder(fiqa_inputs, monkeypatch, capsys):
    import hf_fiqa.metrics.plots as plots

    out = fiqa_inputs / "run"
    seen = []

    def interrupted(curves, path, title=None, x_max=None):
        # pauc.json/.md are written by now, but only in the staging folder
        seen.append((path.parent != out, sorted(p.name for p in path.parent.iterdir()), out.exists()))
        raise KeyboardInterrupt

    monkeypatch.setattr(plots, "plot_edc", interrupted)
    assert cli_main(_fiqa_args(fiqa_inputs, out)) == 130
    assert seen == [(True, ["pauc.json", "pauc.md"], False)]
    assert not out.exists() and _leftovers(fiqa_inputs) == []

    monkeypatch.undo()
    assert cli_main(_fiqa_args(fiqa_inputs, out)) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    monkeypatch.setattr(plots, "plot_edc", interrupted)
    assert cli_main(_fiqa_args(fiqa_inputs, out, "--overwrite")) == 130
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the earlier report, whole
    assert _leftovers(fiqa_inputs) == []


def test_overwrite_never_replaces_a_folder_holding_an_input(fiqa_inputs, capsys):
    assert cli_main(_fiqa_args(fiqa_inputs, fiqa_inputs, "--overwrite")) == 2
    err = capsys.readouterr().err
    assert "holds the input" in err and str(fiqa_inputs) in err
    assert (fiqa_inputs / "emb.npy").is_file()


def test_evaluate_iqa_refuses_an_existing_folder(tmp_path, capsys):
    rng = np.random.default_rng(1)
    names = [f"img{i}.jpg" for i in range(20)]
    mos = rng.random(20)
    (tmp_path / "mos.csv").write_text("image_name,MOS\n" + "".join(f"{n},{m}\n" for n, m in zip(names, mos)))
    (tmp_path / "pred.csv").write_text("image_name,score\n" + "".join(f"{n},{m + rng.random() * 0.1}\n"
                                                                      for n, m in zip(names, mos)))
    out = tmp_path / "iqa"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    args = ["evaluate-iqa", "--predictions", str(tmp_path / "pred.csv"), "--mos", str(tmp_path / "mos.csv"),
            "--output-dir", str(out)]
    assert cli_main(args) == 2
    _refused(capsys, out)
    assert cli_main([*args, "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["correlation.json", "correlation.md", "scatter.png"]


# -- dataset convert / rec2parquet -----------------------------------------------------------------------------------
@pytest.fixture()
def people(tmp_path):
    root = tmp_path / "people"
    rng = np.random.default_rng(0)
    for person in ("ann", "ben"):
        (root / person).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(root / person / f"{i}.jpg")
    return root


def _convert_args(root, out, *extra):
    return ["dataset", "convert", "identity-folder", str(root), "--output", str(out), *extra]


def test_dataset_convert_refuses_an_existing_folder_and_replaces_it_with_overwrite(people, tmp_path, capsys):
    out = tmp_path / "repo"
    assert cli_main(_convert_args(people, out)) == 0
    assert (out / "README.md").is_file() and list((out / "data").glob("train-*.parquet"))
    (out / "stale.txt").write_text("old")
    capsys.readouterr()

    assert cli_main(_convert_args(people, out)) == 2
    _refused(capsys, out)
    assert (out / "stale.txt").is_file()

    assert cli_main(_convert_args(people, out, "--overwrite")) == 0
    assert (out / "README.md").is_file() and not (out / "stale.txt").exists()
    assert _leftovers(tmp_path) == []


def test_interrupted_dataset_convert_leaves_no_half_written_folder(people, tmp_path, monkeypatch):
    import hf_fiqa.data.publish as publish

    real = publish.write_parquet_shards

    def interrupted(*args, **kwargs):
        real(*args, **kwargs)  # a shard is written, in the staging folder
        raise KeyboardInterrupt

    monkeypatch.setattr(publish, "write_parquet_shards", interrupted)
    out = tmp_path / "repo"
    assert cli_main(_convert_args(people, out)) == 130
    assert not out.exists() and _leftovers(tmp_path) == []


def test_dataset_rec2parquet_refuses_an_existing_folder(tmp_path, capsys):
    out = tmp_path / "pq"
    out.mkdir()
    (out / "x").write_text("")
    assert cli_main(["dataset", "rec2parquet", str(tmp_path / "missing"), "--output", str(out)]) == 2
    _refused(capsys, out)


# -- the writer underneath -------------------------------------------------------------------------------------------
def test_staged_folder_appears_whole_or_not_at_all(tmp_path):
    final = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with StagedFolder(final) as tmp:
            (tmp / "a.txt").write_text("a")
            raise RuntimeError("failed half way")
    assert not final.exists() and _leftovers(tmp_path) == []

    staged = StagedFolder(final)
    with staged as tmp:
        (tmp / "sub").mkdir()
        (tmp / "sub" / "b.txt").write_text("b")
        assert not final.exists()
    assert staged.final_paths({"b": tmp / "sub" / "b.txt"}) == {"b": final / "sub" / "b.txt"}
    assert (final / "sub" / "b.txt").read_text() == "b"

    other = tmp_path / "other"
    other.mkdir()
    (other / "c.txt").write_text("c")
    replace_dir(other, final)  # replaces a non-empty folder
    assert sorted(p.name for p in final.iterdir()) == ["c.txt"] and not other.exists()
    assert _leftovers(tmp_path) == []
