"""Hub packaging of MANIQA: remote code, offline HF cache, official-checkpoint conversion and its CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hf_fiqa.hub import package_quality_model
from hf_fiqa.cli import main as cli_main
from hf_fiqa.models.maniqa import MANIQAConfig, MANIQAForImageQualityAssessment, MANIQAImageProcessor
from hf_fiqa.models.conversion import CheckpointError
from hf_fiqa.models.maniqa.convert_maniqa import convert_maniqa_checkpoint
from reference_maniqa import ReferenceMANIQA

REPO_ID = "org/maniqa-sdd-fiqa"

# Runs in a fresh interpreter where importing hf_fiqa is impossible, as on a machine that only has
# transformers + timm: everything must come from the saved folder's remote code.
FRESH_PROCESS = r"""
import sys, json
sys.modules["hf_fiqa"] = None  # any `import hf_fiqa...` now raises ImportError
import numpy as np, torch
from transformers import AutoModel, AutoImageProcessor
source, image_path, out = sys.argv[1], sys.argv[2], sys.argv[3]
model = AutoModel.from_pretrained(source, trust_remote_code=True).eval()
processor = AutoImageProcessor.from_pretrained(source, trust_remote_code=True)
batch = processor([image_path], return_tensors="pt")
with torch.no_grad():
    score = model(pixel_values=batch["pixel_values"]).score
np.save(out, score.numpy())
print(json.dumps({"model": type(model).__module__, "processor": type(processor).__module__}))
"""


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    torch.manual_seed(1)
    model = MANIQAForImageQualityAssessment(MANIQAConfig.tiny()).eval()
    folder = tmp_path_factory.mktemp("maniqa-tiny")
    model.save_pretrained(folder)
    MANIQAImageProcessor(crop_size=32, policy="five_crop").save_pretrained(folder)
    package_quality_model(folder)  # the export steps' packaging: pipeline code and its helpers beside the weights
    return model, folder


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    from PIL import Image

    rng = np.random.default_rng(3)
    path = tmp_path_factory.mktemp("img") / "photo.png"
    Image.fromarray(rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)).save(path)
    return path


def _in_process_score(model, folder, image) -> np.ndarray:
    processor = MANIQAImageProcessor.from_pretrained(folder)
    with torch.no_grad():
        return model(pixel_values=processor([image])["pixel_values"]).score.numpy()


def _run_fresh(source: str, image: Path, tmp_path: Path, env: dict[str, str]) -> tuple[np.ndarray, dict]:
    out = tmp_path / "score.npy"
    full_env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), **env}
    proc = subprocess.run([sys.executable, "-c", FRESH_PROCESS, source, str(image), str(out)],
                          capture_output=True, text=True, env=full_env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return np.load(out), json.loads(proc.stdout.strip().splitlines()[-1])


def test_save_pretrained_writes_safetensors_and_remote_code(saved_model):
    _, folder = saved_model
    names = {p.name for p in folder.iterdir()}
    assert {"model.safetensors", "config.json", "preprocessor_config.json", "configuration_maniqa.py",
            "modeling_maniqa.py", "image_processing_maniqa.py", "fiqa_io.py"} <= names
    assert not any(n.endswith((".bin", ".pth", ".pt")) for n in names)
    auto_map = json.loads((folder / "config.json").read_text())["auto_map"]
    assert auto_map["AutoModel"] == "modeling_maniqa.MANIQAForImageQualityAssessment"
    processor_map = json.loads((folder / "preprocessor_config.json").read_text())["auto_map"]
    assert processor_map["AutoImageProcessor"] == "image_processing_maniqa.MANIQAImageProcessor"
    assert not (folder / "fiqa_io.py").is_symlink()


def test_remote_code_from_folder_in_fresh_process(saved_model, photo, tmp_path):
    model, folder = saved_model
    scores, modules = _run_fresh(str(folder), photo, tmp_path, {})
    assert "hf_fiqa" not in modules["model"] and "hf_fiqa" not in modules["processor"]
    np.testing.assert_array_equal(scores, _in_process_score(model, folder, photo))


def test_remote_code_from_offline_hub_cache(saved_model, photo, tmp_path):
    """``from_pretrained("org/maniqa-sdd-fiqa")`` resolves from a populated HF cache with HF_HUB_OFFLINE=1."""
    model, folder = saved_model
    cache = tmp_path / "hub"
    revision = "0123456789abcdef0123456789abcdef01234567"
    repo_dir = cache / ("models--" + REPO_ID.replace("/", "--"))
    shutil.copytree(folder, repo_dir / "snapshots" / revision)
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(revision)
    scores, _ = _run_fresh(REPO_ID, photo, tmp_path, {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"})
    np.testing.assert_array_equal(scores, _in_process_score(model, folder, photo))


def test_auto_classes_in_process(saved_model):
    from transformers import AutoConfig, AutoImageProcessor, AutoModel

    import hf_fiqa

    hf_fiqa.register()  # the families in the Auto classes: no trust_remote_code needed in process
    _, folder = saved_model
    assert isinstance(AutoConfig.from_pretrained(folder), MANIQAConfig)
    assert isinstance(AutoModel.from_pretrained(folder), MANIQAForImageQualityAssessment)
    assert isinstance(AutoImageProcessor.from_pretrained(folder), MANIQAImageProcessor)


# -- conversion -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def official_checkpoint(tmp_path_factory):
    torch.manual_seed(2)
    config = MANIQAConfig.tiny(swin_residual_scale=0.13)
    reference = ReferenceMANIQA(config).eval()
    with torch.no_grad():
        reference.fc_score[3].bias.fill_(0.5)
    folder = tmp_path_factory.mktemp("official")
    wrapped = {"state_dict": {f"module.{k}": v for k, v in reference.state_dict().items()}, "epoch": torch.tensor(3)}
    torch.save(wrapped, folder / "ckpt.pth")
    return reference, folder / "ckpt.pth"


def test_conversion_reproduces_official_scores(official_checkpoint, tmp_path):
    reference, path = official_checkpoint
    code = cli_main(["convert", "maniqa", str(path), str(tmp_path / "out"), "--feature-layers", "1,2",
                     "--swin-residual-scale", "0.13", "--backbone-num-heads", "2"])
    assert code == 0
    model = MANIQAForImageQualityAssessment.from_pretrained(tmp_path / "out").eval()
    assert model.config.to_dict()["swin_residual_scale"] == 0.13
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x).score, reference(x), atol=1e-4, rtol=0)


def test_wrong_residual_scale_changes_scores(official_checkpoint, tmp_path):
    """Guards the comparison above: the scale matters, so equality there is not an accident."""
    reference, path = official_checkpoint
    model = convert_maniqa_checkpoint(path, tmp_path / "out", feature_layers=(1, 2), backbone_num_heads=2)
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert (model(x).score - reference(x)).abs().max() > 1e-4


def test_conversion_reports_every_bad_key(official_checkpoint, tmp_path):
    reference, _ = official_checkpoint
    state = dict(reference.state_dict())
    del state["tablock2.0.c_q.weight"]
    state["fc_score.0.weight"] = torch.zeros(3, 3)
    state["extra.thing"] = torch.zeros(1)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError) as info:
        convert_maniqa_checkpoint(tmp_path / "bad.pth", tmp_path / "out", feature_layers=(1, 2), backbone_num_heads=2)
    message = str(info.value)
    assert "stage2.tabs.0.c_q.weight" in message and "extra.thing" in message and "score_head.0.weight" in message


def test_conversion_refuses_pickled_objects(tmp_path, capsys):
    torch.save({"model": {"weight": torch.zeros(1)}, "args": __import__("argparse").Namespace(lr=0.1)}, tmp_path / "pickled.pth")
    assert cli_main(["convert", "maniqa", str(tmp_path / "pickled.pth"), str(tmp_path / "out")]) == 2
    assert "tensor-only" in capsys.readouterr().err


def test_conversion_of_non_checkpoint_file(tmp_path, capsys):
    (tmp_path / "notes.pth").write_text("not a checkpoint")
    assert cli_main(["convert", "maniqa", str(tmp_path / "notes.pth"), str(tmp_path / "out")]) == 2
    assert "notes.pth" in capsys.readouterr().err
