"""train.py against careless and hostile input: exact resume, atomic and damaged checkpoints, data and config checks."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from hf_fiqa.commands.train import main as train_main
from hf_fiqa.training.config import ConfigError, TrainConfig

REPO = Path(__file__).resolve().parents[1]
TINY_IQA = REPO / "hub_configs" / "tiny-iqa-degradations.yaml"
TINY_RECOGNITION = REPO / "hub_configs" / "tiny-recognition.yaml"


def _state(folder: Path) -> dict:
    return json.loads((folder / "trainer_state.json").read_text())


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@pytest.fixture
def one_thread():
    """In-process runs use one thread like the subprocesses (OMP_NUM_THREADS=1): same kernels, same bits."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _iqa_args(shared: Path, out: Path, *extra: str) -> list[str]:
    return ["--config", str(TINY_IQA), f"data.root={shared / 'data' / 'celeba-wild-ids'}", f"output_dir={out}",
            "data.limit=16", "batch_size=4", *extra]


def _weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(checkpoint / "model.safetensors")


# -- 1. resume is exact -------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_killed_and_resumed_run_reproduces_the_uninterrupted_run_bit_for_bit(shared, tmp_path, one_thread, capsys):
    """Kill -9 after the first checkpoint (8 batches per epoch, checkpoints every 3 steps: mid-epoch), resume:
    every logged loss and the final weights equal the uninterrupted run's exactly."""
    steps = ["max_steps=30", "save_every=3", "eval_every=15", "log_every=1", "keep_checkpoints=2"]
    killed = tmp_path / "killed"
    first = killed / "checkpoints" / "step_3" / "trainer_state.json"
    proc = subprocess.Popen([sys.executable, str(REPO / "train.py"), *_iqa_args(shared, killed, *steps)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(), cwd=REPO)

    def kill_after_first_checkpoint():
        deadline = time.time() + 300
        while not first.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.01)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_after_first_checkpoint)
    killer.start()
    try:
        assert train_main(_iqa_args(shared, tmp_path / "full", *steps)) == 0  # meanwhile, the uninterrupted run
    finally:
        killer.join()
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert first.exists() or list((killed / "checkpoints").glob("step_*")), "the run never wrote a checkpoint"
    assert not (killed / "trainer_state.json").exists(), "the run finished before it could be killed"

    capsys.readouterr()
    assert train_main(_iqa_args(shared, killed, *steps, "--resume", "latest")) == 0
    resumed_at = int(capsys.readouterr().out.split("resumed from ")[1].split(" at step ")[1].split()[0])
    assert 3 <= resumed_at < 30
    full, resumed = _state(tmp_path / "full"), _state(killed)
    assert resumed["global_step"] == 30
    assert [e["step"] for e in resumed["train_log"]] == list(range(1, 31))
    assert resumed["train_log"] == full["train_log"]  # losses (and lr) of every step, bit for bit
    assert resumed["history"] == full["history"]
    a, b = _weights(tmp_path / "full" / "checkpoints" / "step_30"), _weights(killed / "checkpoints" / "step_30")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_augmentation_depends_only_on_seed_epoch_and_index():
    """The global RNG is neither read nor moved by fetching an example (accelerate reads one batch ahead)."""
    from datasets import Dataset
    from PIL import Image

    from hf_fiqa.training.data import ExampleDataset, train_transform

    images = [Image.fromarray(np.random.default_rng(i).integers(0, 256, (40, 48, 3), dtype=np.uint8)) for i in range(3)]
    ds = ExampleDataset(Dataset.from_dict({"image": images, "label": [0.0, 1.0, 2.0]}),
                        train_transform(32, [0.5] * 3, [0.5] * 3, "random_crop"), float, seed=7)
    torch.manual_seed(0)
    before = torch.get_rng_state()
    first = ds[1][0]
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(123)
    ds[0], ds[2]
    assert torch.equal(ds[1][0], first)
    ds.set_epoch(1)
    assert not torch.equal(ds[1][0], first)


# -- 2. checkpoints: atomic, damaged ones skipped, changed settings refused -----------------------------------------
@pytest.fixture(scope="module")
def checkpointed_run(shared, tmp_path_factory):
    """A finished run with checkpoints at steps 2, 4 and 6."""
    out = tmp_path_factory.mktemp("ckpt") / "run"
    assert train_main(_iqa_args(shared, out, "max_steps=6", "save_every=2", "eval_every=6",
                                "keep_checkpoints=3")) == 0
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_2", "step_4", "step_6"]
    return out


def _copy(run: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(run, out)
    return out


@pytest.mark.parametrize("damage", ["empty_state", "truncated_state", "missing_model", "truncated_model"])
def test_damaged_newest_checkpoint_falls_back_to_the_previous_with_a_warning(checkpointed_run, tmp_path, damage):
    from hf_fiqa.training.checkpoints import checkpoint_problem, latest_checkpoint

    out = _copy(checkpointed_run, tmp_path)
    newest = out / "checkpoints" / "step_6"
    assert checkpoint_problem(newest) is None
    if damage == "empty_state":
        (newest / "trainer_state.json").write_text("")
    elif damage == "truncated_state":
        text = (newest / "trainer_state.json").read_text()
        (newest / "trainer_state.json").write_text(text[: len(text) // 2])
    elif damage == "missing_model":
        (newest / "model.safetensors").unlink()
    else:
        data = (newest / "model.safetensors").read_bytes()
        (newest / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.warns(RuntimeWarning, match="step_6"):
        assert latest_checkpoint(out) == out / "checkpoints" / "step_4"
    assert checkpoint_problem(newest)


def test_resume_skips_a_damaged_checkpoint_and_finishes(checkpointed_run, shared, tmp_path, capsys):
    out = _copy(checkpointed_run, tmp_path)
    (out / "trainer_state.json").unlink()
    (out / "checkpoints" / "step_6" / "trainer_state.json").write_text('{"global_st')
    with pytest.warns(RuntimeWarning, match=r"step_6 is incomplete or damaged \(trainer_state.json is empty or truncated"):
        assert train_main(_iqa_args(shared, out, "max_steps=6", "save_every=2", "eval_every=6", "keep_checkpoints=3",
                                    "--resume", "latest")) == 0
    assert "resumed from" in capsys.readouterr().out and _state(out)["global_step"] == 6
    from hf_fiqa.training.checkpoints import checkpoint_problem

    assert checkpoint_problem(out / "checkpoints" / "step_6") is None  # rewritten whole


def test_explicit_damaged_checkpoint_is_refused(checkpointed_run, shared, tmp_path):
    out = _copy(checkpointed_run, tmp_path)
    (out / "checkpoints" / "step_4" / "model.safetensors").unlink()
    config = TrainConfig.from_file(TINY_IQA, _iqa_args(shared, out, "max_steps=6")[2:]
                                   + [f"resume={out / 'checkpoints' / 'step_4'}"])
    from hf_fiqa.training.loop import train

    with pytest.raises(ConfigError, match="step_4 cannot be resumed: the model file"):
        train(config)


def test_kill_during_a_save_leaves_the_previous_checkpoint_complete(shared, tmp_path, monkeypatch):
    """A save interrupted after accelerate wrote part of its files leaves no step_N folder, only a hidden partial
    one; the resumed run starts from the previous checkpoint and clears the leftovers."""
    import hf_fiqa.training.checkpoints as checkpoints

    out = tmp_path / "run"
    real = checkpoints.replace_dir

    def killed_at_step_4(tmp, final):
        if Path(final).name == "step_4":
            raise KeyboardInterrupt  # as a kill between the state files and the rename
        return real(tmp, final)

    monkeypatch.setattr(checkpoints, "replace_dir", killed_at_step_4)
    args = _iqa_args(shared, out, "max_steps=6", "save_every=2", "eval_every=6")
    with pytest.raises(KeyboardInterrupt):
        train_main(args)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [".step_4.partial", "step_2"]
    assert checkpoints.latest_checkpoint(out) == out / "checkpoints" / "step_2"
    monkeypatch.setattr(checkpoints, "replace_dir", real)
    assert train_main(args + ["--resume", "latest"]) == 0
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_4", "step_6"]


def test_atomic_write_keeps_the_old_file_when_the_write_fails(tmp_path, monkeypatch):
    from hf_fiqa import atomic as _fs

    target = tmp_path / "trainer_state.json"
    _fs.atomic_write_text(target, "old")
    monkeypatch.setattr(_fs.os, "replace", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        _fs.atomic_write_text(target, "new")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["trainer_state.json"]


@pytest.mark.parametrize("override, old, new", [
    ("batch_size=2", "4", "2"), ("seed=1", "0", "1"), ("data.val_fraction=0.5", "0.2", "0.5"),
    ("data.limit=24", "16", "24"), ("data.balanced_sampling=true", "False", "True"),
    ("gradient_accumulation_steps=2", "1", "2"), ("data.severities=[1, 5]", "[1, 3, 5]", "[1, 5]"),
])
def test_resume_refuses_settings_that_change_the_data_order(checkpointed_run, shared, tmp_path, override, old, new):
    out = _copy(checkpointed_run, tmp_path)
    config = TrainConfig.from_file(TINY_IQA, _iqa_args(shared, out, "max_steps=8")[2:] + [override, "resume=latest"])
    from hf_fiqa.training.loop import train

    key = override.split("=")[0]
    with pytest.raises(ConfigError, match=rf"{key} \(the run used {_re(old)}, now {_re(new)}\)"):
        train(config)


def _re(text: str) -> str:
    import re

    return re.escape(text)


def test_resume_from_a_checkpoint_folder_checks_its_settings(checkpointed_run, shared, tmp_path):
    """A checkpoint copied elsewhere carries its settings; a fresh output dir has no train_config.yaml to compare."""
    folder = tmp_path / "step_4"
    shutil.copytree(checkpointed_run / "checkpoints" / "step_4", folder)
    config = TrainConfig.from_file(TINY_IQA, _iqa_args(shared, tmp_path / "new", "max_steps=6", "seed=3")[2:]
                                   + [f"resume={folder}"])
    from hf_fiqa.training.loop import train

    with pytest.raises(ConfigError, match=r"seed \(the run used 0, now 3\)"):
        train(config)


def test_resume_may_change_settings_that_keep_the_data_order(checkpointed_run, shared, tmp_path):
    out = _copy(checkpointed_run, tmp_path)
    assert train_main(_iqa_args(shared, out, "max_steps=6", "eval_every=3", "data.num_workers=0", "log_every=1",
                                "--resume", "latest")) == 0


# -- 3. data checks -------------------------------------------------------------------------------------------------
def _photos(shared: Path, n: int) -> list[str]:
    table = pd.read_csv(shared / "data" / "celeba-wild-ids" / "labels.csv").head(n)
    return [str(shared / "data" / "celeba-wild-ids" / p) for p in table["path"]]


@pytest.mark.parametrize("bad", ["nan", "inf", "-inf", "NaN"])
def test_non_finite_iqa_label_is_refused_before_training_naming_file_and_line(shared, tmp_path, bad, capsys):
    photos = _photos(shared, 8)
    labels = [str(float(i)) for i in range(8)]
    labels[2] = labels[5] = bad
    csv = tmp_path / "mos.csv"
    pd.DataFrame({"image": photos, "label": labels}).to_csv(csv, index=False)
    out = tmp_path / "run"
    code = train_main(["--config", str(TINY_IQA), "data.source=csv", f"data.root={csv}", f"output_dir={out}",
                       "max_steps=2", "batch_size=2"])
    err = capsys.readouterr().err
    assert code == 2
    assert str(csv) in err and "line 4" in err and "line 7" in err and "not finite" in err, err
    assert not (out / "checkpoints").exists()


def test_empty_csv_is_refused(tmp_path):
    from hf_fiqa.training.data import load_iqa

    csv = tmp_path / "mos.csv"
    csv.write_text("image,label\n")
    with pytest.raises(ConfigError, match="no rows"):
        load_iqa(TrainConfig.from_file(TINY_IQA, ["data.source=csv", f"data.root={csv}"]))


def test_non_finite_pseudo_label_is_refused_naming_the_rows(shared, tmp_path):
    from hf_fiqa.training.data import load_fiqa

    photos = _photos(shared, 16)
    pd.DataFrame({"row": range(16), "path": photos, "identity": [i // 8 for i in range(16)]}).to_csv(
        tmp_path / "rows.csv", index=False)
    quality = np.linspace(0, 100, 16)
    quality[3] = np.nan
    pd.DataFrame({"row": range(16), "quality": quality}).to_parquet(tmp_path / "labels.parquet")
    config = TrainConfig.from_file(TINY_IQA, ["task=fiqa", "data.source=pseudo_labels", "data.aligned=true",
                                              f"data.rows={tmp_path / 'rows.csv'}", "data.limit=null",
                                              f"data.labels={tmp_path / 'labels.parquet'}"])
    with pytest.raises(ConfigError, match=r"labels.parquet: 1 quality label\(s\) are not finite.*parquet row 3 \(row id 3\)"):
        load_fiqa(config, 32)


def test_recognition_needs_identities_with_two_or_more_photos(shared, tmp_path):
    from hf_fiqa.training.data import load_recognition

    names = []
    for i, photo in enumerate(_photos(shared, 8)):
        shutil.copy(photo, tmp_path / f"{i}.jpg")
        names.append(f"{i}.jpg")
    csv = tmp_path / "ids.csv"
    # 5 identities: one with 4 photos, four with a single one.
    pd.DataFrame({"path": names, "identity": ["a", "a", "a", "a", "b", "c", "d", "e"]}).to_csv(csv, index=False)
    config = TrainConfig.from_file(TINY_RECOGNITION, [f"data.root={csv}", "data.aligned=true", "data.limit=null"])
    with pytest.raises(ConfigError, match=r"ids.csv: recognition needs at least 2 identities with two or more photos, "
                                          r"found 1 \(a\).*single photo: b, c, d, e"):
        load_recognition(config, 112)


def test_recognition_validation_without_genuine_pairs_is_refused():
    from hf_fiqa.training.data import check_identities, check_validation_pairs

    check_identities(["a", "a", "b", "b", "c"], "x.csv", "recognition")
    with pytest.raises(ConfigError, match="x.csv: the validation split of recognition holds 2 photos of 2 identities"):
        check_validation_pairs(["c", "d"], "x.csv", "recognition")


def test_no_detectable_face_is_an_error_naming_the_source(shared, yunet_weights, tmp_path):
    from PIL import Image

    from hf_fiqa.training.data import load_recognition

    rows = []
    for i in range(6):
        path = tmp_path / f"blank_{i}.png"
        Image.new("RGB", (96, 96), (120 + i, 120, 120)).save(path)
        rows.append({"path": path.name, "identity": f"id{i // 2}"})
    csv = tmp_path / "blank.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    config = TrainConfig.from_file(TINY_RECOGNITION, [f"data.root={csv}", f"data.detector_weights={yunet_weights}",
                                                      "data.limit=null"])
    with pytest.raises(ConfigError, match=r"blank.csv: none of the 6 photos has a detectable face"):
        load_recognition(config, 112)


# -- 4. config errors -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("override, message", [
    ("optim.lr=abc", "optim.lr must be a number, got 'abc'"),
    ("optim.lr=nan", "optim.lr must be a finite number"),
    ("optim.lr=.inf", "optim.lr must be a finite number"),
    ("batch_size=4.7", "batch_size must be an integer, got 4.7"),
    ("max_steps=12.5", "max_steps must be an integer"),
    ("seed=true", "seed must be an integer, got True"),
    ("data.severities=22", "data.severities must be a list"),
    ("data.severities='22'", "data.severities must be a list"),
    ("data.severities=[1, 2.5]", r"data.severities\[1\] must be an integer"),
    ("data.degradations=jpeg", "data.degradations must be a list"),
    ("trackers=tensorboard", "trackers must be a list"),
    ("model.kwargs=3", "model.kwargs must be a mapping"),
    ("data.aligned=1", "data.aligned must be true or false"),
    ("name=12", "name must be text"),
    ("batch_size=0", "batch_size: must be positive, got 0"),
    ("batch_size=-4", "batch_size: must be positive, got -4"),
    ("max_steps=0", "max_steps: must be positive, got 0"),
    ("max_steps=-5", "max_steps: must be positive"),
    ("eval_every=0", "eval_every: must be positive"),
    ("data.limit=0", "data.limit: must be positive"),
    ("optim.lr=-1e-3", "optim.lr: must be positive"),
    ("data.num_workers=-1", "data.num_workers: must not be negative"),
    ("seed=-3", "seed: must not be negative"),
    ("data.val_fraction=1.5", "data.val_fraction: must be in"),
    ("data.severities=[7]", "data.severities: severity 7"),
    ("data.degradations=[blur]", "data.degradations: unknown degradation 'blur'"),
    ("trackers=[tensorbord]", "trackers: unknown tracker 'tensorbord'"),
    ("device=cuda", "device: devices and processes are chosen by accelerate"),
    ("optim.learning_rate=1e-4", "unknown config key.*optim.learning_rate: the learning rate is optim.lr"),
])
def test_config_errors_name_the_key(shared, override, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig.from_file(TINY_IQA, [f"data.root={shared / 'data' / 'celeba-wild-ids'}", override])


def test_whole_numbers_and_yaml_floats_are_accepted_exactly(shared):
    config = TrainConfig.from_file(TINY_IQA, [f"data.root={shared / 'data' / 'celeba-wild-ids'}", "max_steps=1e3",
                                              "optim.lr=1e-4", "batch_size=8", "data.severities=[1, 5]"])
    assert config.max_steps == 1000 and isinstance(config.max_steps, int)
    assert config.optim.lr == 1e-4 and config.batch_size == 8 and config.data.severities == [1, 5]


@pytest.mark.parametrize("flag", ["--device", "--gpus", "--num_processes"])
def test_device_like_options_are_a_clear_error(flag, capsys):
    assert train_main(["--config", str(TINY_IQA), flag, "2"]) == 2
    err = capsys.readouterr().err
    assert f"unknown option {flag}" in err and "accelerate launch" in err


def test_misspelt_option_suggests_the_real_one(capsys):
    assert train_main(["--config", str(TINY_IQA), "--output_dirr", "x"]) == 2
    assert "did you mean --output-dir" in capsys.readouterr().err


@pytest.mark.parametrize("path", sorted((REPO / "hub_configs").glob("*.yaml")), ids=lambda p: p.name)
def test_published_configs_pass_the_checks_but_for_absent_data(path):
    config = TrainConfig.parse(path)
    try:
        config.validate()
    except ConfigError as exc:
        assert "config key data." in str(exc) and "does not exist" in str(exc), exc
