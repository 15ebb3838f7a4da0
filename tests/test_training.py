"""train.py: configs, the three tasks, accelerate multi-process, kill-and-resume, export to the face pipeline."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hf_fiqa.commands.train import main as train_main
from hf_fiqa.training.config import ConfigError, TrainConfig
from hf_fiqa.training.data import load_iqa

REPO = Path(__file__).resolve().parents[1]
TINY_IQA = REPO / "hub_configs" / "tiny-iqa-degradations.yaml"
TINY_RECOGNITION = REPO / "hub_configs" / "tiny-recognition.yaml"


def _state(folder: Path) -> dict:
    return json.loads((folder / "trainer_state.json").read_text())


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _shared_root(shared: Path, name: str) -> str:
    return str(shared / "data" / name)


# -- configs ----------------------------------------------------------------------------------------------------
def test_unknown_key_names_it(tmp_path):
    with pytest.raises(ConfigError, match="optim.learning_rate"):
        TrainConfig.from_file(TINY_IQA, ["optim.learning_rate=1e-4"])


def test_override_syntax_and_types(shared):
    config = TrainConfig.from_file(TINY_IQA, ["optim.lr=2e-4", "batch_size=4", f"data.root={_shared_root(shared, 'lfw')}"])
    assert config.optim.lr == 2e-4 and config.batch_size == 4
    with pytest.raises(ConfigError, match="key=value"):
        TrainConfig.from_file(TINY_IQA, ["batch_size"])


def test_hf_fiqa_train_is_the_same_command_as_train_py(tmp_path, capsys):
    """``accelerate launch -m hf_fiqa.cli train`` works from the wheel, where train.py does not exist."""
    from hf_fiqa.cli import main as cli_main

    args = ["--config", str(TINY_IQA), f"data.root={tmp_path / 'nowhere'}"]
    assert cli_main(["train", *args]) == 2
    via_cli = capsys.readouterr().err
    assert train_main(args) == 2
    assert "data.root" in via_cli and via_cli == capsys.readouterr().err


def test_missing_dataset_fails_before_training(tmp_path):
    with pytest.raises(ConfigError, match="data.root"):
        TrainConfig.from_file(TINY_IQA, [f"data.root={tmp_path / 'nowhere'}"])


def test_bad_values_are_refused(shared):
    root = f"data.root={_shared_root(shared, 'celeba-wild-ids')}"
    with pytest.raises(ConfigError, match="mixed_precision"):
        TrainConfig.from_file(TINY_IQA, [root, "mixed_precision=fp8"])
    with pytest.raises(ConfigError, match="model.arch"):
        TrainConfig.from_file(TINY_IQA, [root, "model.arch=iresnet"])
    with pytest.raises(ConfigError, match="hub_model_id"):
        TrainConfig.from_file(TINY_IQA, [root, "push_to_hub=true"])


# -- iqa: a learnable signal, export, pipeline --------------------------------------------------------------------
@pytest.fixture(scope="module")
def iqa_run(shared, tmp_path_factory):
    out = tmp_path_factory.mktemp("iqa")
    code = train_main(["--config", str(TINY_IQA), f"data.root={_shared_root(shared, 'celeba-wild-ids')}",
                       f"output_dir={out}", "data.limit=24", "max_steps=120", "eval_every=40", "save_every=120"])
    assert code == 0
    return out


@pytest.mark.slow
def test_loss_falls_on_a_learnable_signal(iqa_run):
    """MOS = noise level of real photos: validation rank correlation must become clearly positive."""
    state = _state(iqa_run)
    history, losses = state["history"], [entry["loss"] for entry in state["train_log"]]
    assert [h["step"] for h in history] == [40, 80, 120]
    assert history[-1]["srcc"] > 0.4, history
    # The training loss falls (validation RMSE on 32 photos after fitting 24 is too noisy to order 3 checkpoints).
    assert losses[-1] < 0.5 * losses[0], losses


@pytest.mark.slow
def test_output_dir_holding_a_run_is_refused(iqa_run, shared):
    code = train_main(["--config", str(TINY_IQA), f"data.root={_shared_root(shared, 'celeba-wild-ids')}",
                       f"output_dir={iqa_run}", "max_steps=2"])
    assert code == 2


@pytest.mark.slow
def test_exported_model_scores_through_face_pipeline_in_fresh_process(iqa_run, shared, yunet_weights):
    model_dir = iqa_run / "model"
    assert (model_dir / "model.safetensors").is_file() and (model_dir / "eval_results.json").is_file()
    config = json.loads((model_dir / "config.json").read_text())
    assert config["label_range"] == [0.0, 5.0]
    # Validation scored centre crops (training takes crops at the image's own resolution); so does the export.
    assert json.loads((model_dir / "preprocessor_config.json").read_text())["policy"] == "center_crop"
    # The export carries a model card with the run's own evaluation.
    from huggingface_hub import ModelCard

    card = ModelCard.load(model_dir / "README.md")
    assert card.data.library_name and card.data.to_dict().get("model-index")
    script = (
        "import json, sys, hf_fiqa\n"
        "from transformers import AutoModel, pipeline\n"
        "model = AutoModel.from_pretrained(sys.argv[1], trust_remote_code=True)\n"
        "pipe = pipeline('face-image-quality', model=sys.argv[1], trust_remote_code=True, device='cpu',"
        " detector_weights=sys.argv[2])\n"
        "print(json.dumps(pipe(sys.argv[3])))\n"
    )
    photo = shared / "data" / "deepface-pairs" / "img1.jpg"
    proc = subprocess.run([sys.executable, "-c", script, str(model_dir), str(yunet_weights), str(photo)],
                          capture_output=True, text=True, env=_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = json.loads(proc.stdout.strip().splitlines()[-1])
    assert record["faces"] and np.isfinite(record["faces"][0]["quality"])


# -- multi-process and resume ---------------------------------------------------------------------------------------
@pytest.mark.slow
def test_two_process_cpu_run(shared, tmp_path):
    """Two CPU processes over gloo (torchrun; accelerate picks the process group up from the environment)."""
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
           str(REPO / "train.py"), "--config", str(TINY_IQA),
           f"data.root={_shared_root(shared, 'celeba-wild-ids')}", f"output_dir={out}", "data.limit=16",
           "max_steps=6", "eval_every=3", "save_every=3", "batch_size=4"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = _state(out)
    assert state["num_processes"] == 2
    assert state["global_step"] == 6 and [h["step"] for h in state["history"]] == [3, 6]
    # Both processes' validation predictions are gathered: every validation example counted once.
    config = TrainConfig.from_file(TINY_IQA, [f"data.root={_shared_root(shared, 'celeba-wild-ids')}", "data.limit=16"])
    assert state["history"][-1]["n"] == len(load_iqa(config).validation)


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_step_count(shared, tmp_path):
    out = tmp_path / "resume"
    args = [sys.executable, str(REPO / "train.py"), "--config", str(TINY_IQA),
            f"data.root={_shared_root(shared, 'celeba-wild-ids')}", f"output_dir={out}", "data.limit=16",
            "max_steps=60", "save_every=5", "eval_every=30", "batch_size=4"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(), cwd=REPO)
    first = out / "checkpoints" / "step_5" / "trainer_state.json"
    deadline = time.time() + 300
    while not first.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert first.exists(), "the run never wrote its first checkpoint"
    assert not (out / "trainer_state.json").exists(), "the run finished before it could be killed"
    resumed = subprocess.run(args + ["--resume", "latest"], capture_output=True, text=True, env=_env(), timeout=600,
                             cwd=REPO)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stdout + resumed.stderr
    state = _state(out)
    assert state["global_step"] == 60
    assert [h["step"] for h in state["history"]] == [30, 60]


# -- fiqa and recognition -------------------------------------------------------------------------------------------
def test_fiqa_task_on_pseudo_labels(shared, yunet_weights, tmp_path):
    labels_csv = pd.read_csv(shared / "data" / "celeba-wild-ids" / "labels.csv").head(48)
    rows = pd.DataFrame({"row": range(len(labels_csv)), "path": labels_csv["path"], "identity": labels_csv["identity"]})
    rows.to_csv(tmp_path / "rows.csv", index=False)
    rng = np.random.default_rng(0)
    pd.DataFrame({"row": rows["row"], "quality": rng.uniform(0, 100, len(rows))}).to_parquet(tmp_path / "labels.parquet")
    np.save(tmp_path / "emb.npy", rng.normal(size=(len(rows), 16)).astype(np.float32))
    common = ["--config", str(TINY_IQA), "task=fiqa", "data.source=pseudo_labels",
              f"data.rows={tmp_path / 'rows.csv'}", f"data.labels={tmp_path / 'labels.parquet'}",
              f"data.embeddings={tmp_path / 'emb.npy'}", f"data.root={shared / 'data' / 'celeba-wild-ids'}",
              f"data.detector_weights={yunet_weights}", "data.limit=null", "data.val_fraction=0.25",
              "max_steps=4", "eval_every=4", "save_every=4", "batch_size=4", "data.balanced_sampling=true"]
    assert train_main(common + [f"output_dir={tmp_path / 'run'}"]) == 0
    last = _state(tmp_path / "run")["history"][-1]
    assert np.isfinite(last["srcc"]) and any(k.startswith("pauc_") for k in last)
    # Labels outside SDD-FIQA's [0, 100] are refused before training.
    pd.DataFrame({"row": rows["row"], "quality": rng.uniform(0, 300, len(rows))}).to_parquet(tmp_path / "bad.parquet")
    assert train_main(common + [f"data.labels={tmp_path / 'bad.parquet'}", f"output_dir={tmp_path / 'bad'}"]) == 2


@pytest.mark.slow
def test_recognition_task(shared, tmp_path):
    out = tmp_path / "rec"
    code = train_main(["--config", str(TINY_RECOGNITION), f"data.root={_shared_root(shared, 'lfw')}",
                       f"data.detector_weights={shared / 'weights' / 'yunet' / 'face_detection_yunet.onnx'}",
                       f"output_dir={out}", "max_steps=6", "eval_every=6", "save_every=6"])
    assert code == 0
    last = _state(out)["history"][-1]
    assert 0 <= last["eer"] <= 1 and last["genuine_pairs"] > 0
    from transformers import AutoModel

    model = AutoModel.from_pretrained(out / "model", trust_remote_code=True)
    assert model.config.model_type == "iresnet"
    from transformers import AutoImageProcessor

    processor = AutoImageProcessor.from_pretrained(out / "model", trust_remote_code=True)
    assert type(processor).__name__ == "IResNetImageProcessor" and processor.image_size == model.config.image_size
    assert (processor.channel_order, processor.image_mean, processor.image_std) == ("RGB", [0.5] * 3, [0.5] * 3)


def test_wrongly_typed_values_name_the_key():
    with pytest.raises(ConfigError, match="batch_size must be an integer"):
        TrainConfig.from_file(TINY_IQA, ["batch_size=2.5"])
    with pytest.raises(ConfigError, match="optim.lr must be a number"):
        TrainConfig.from_file(TINY_IQA, ["optim.lr=fast"])


@pytest.mark.parametrize("path", sorted((REPO / "hub_configs").glob("*.yaml")), ids=lambda p: p.name)
def test_published_configs_use_only_known_keys(path):
    config = TrainConfig.parse(path)
    assert config.task in ("iqa", "fiqa", "recognition") and config.name == path.stem


def test_validation_reads_images_through_the_exported_processor():
    from PIL import Image

    from hf_fiqa.models.iresnet import IResNetImageProcessor
    from hf_fiqa.models.maniqa import MANIQAImageProcessor
    from hf_fiqa.training.data import ProcessorTransform

    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8))
    for processor in (MANIQAImageProcessor(crop_size=32, policy="center_crop"), IResNetImageProcessor(image_size=32)):
        got = ProcessorTransform(processor)(image)
        assert got.shape == (3, 32, 32)
        assert np.array_equal(got.numpy(), processor(image, return_tensors="pt")["pixel_values"][0].numpy())
    with pytest.raises(ValueError, match="single-view"):
        ProcessorTransform(MANIQAImageProcessor(crop_size=32, policy="five_crop"))(image)
