"""Hub-native quality models: pipelines declared in config.json and runnable without hf-fiqa, quality bands
through ``image-classification``, and model cards."""

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

from hf_fiqa.hub import package_quality_model, write_model_card
from hf_fiqa.quality_scale import band_of, band_scores, quality_0_100
from hf_fiqa.models.maniqa import MANIQAConfig, MANIQAForImageQualityAssessment, MANIQAImageProcessor

CALIBRATION = {"intercept": 5.0, "slope": -10.0, "meaning": "test calibration"}  # quality 50 at score 0.5


def _save_maniqa(folder: Path, **config) -> Path:
    torch.manual_seed(0)
    model = MANIQAForImageQualityAssessment(MANIQAConfig.tiny(**config)).eval()
    model.save_pretrained(folder)
    MANIQAImageProcessor(crop_size=32, policy="resize").save_pretrained(folder)
    package_quality_model(folder)  # the export steps' packaging
    return folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return _save_maniqa(tmp_path_factory.mktemp("hub") / "maniqa-tiny")


@pytest.fixture
def couple(shared):
    path = shared / "data" / "deepface-pairs" / "couple.jpg"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path


def _isolated_env(tmp_path: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_FIQA_DETECTOR_WEIGHTS", "PYTHONPATH")}
    env.update(HF_HOME=str(tmp_path / "hf-home"), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", **extra)
    return env


# Runs where hf_fiqa cannot be imported: everything must come from the saved folder.
WITHOUT_PACKAGE = r"""
import json, sys
sys.modules["hf_fiqa"] = None  # any `import hf_fiqa...` now raises ImportError
try:
    import hf_fiqa
    raise SystemExit("hf_fiqa is importable")
except ImportError:
    pass
from transformers import pipeline
folder, photo = sys.argv[1], sys.argv[2]
faces = pipeline("face-image-quality", model=folder, trust_remote_code=True)
record = faces(photo)
bands = pipeline("image-classification", model=folder, trust_remote_code=True)
print(json.dumps({"class": type(faces).__name__, "record": record, "bands": bands(photo),
                  "aligned": faces([photo], aligned=True), "broken": faces(b"not an image")}))
"""


def test_packaging_declares_pipelines_and_ships_code(folder):
    config = json.loads((folder / "config.json").read_text())
    assert set(config["custom_pipelines"]) == {"face-image-quality", "image-classification"}
    for task in config["custom_pipelines"].values():
        module = task["impl"].split(".")[0]
        assert (folder / f"{module}.py").is_file()
    assert (folder / "fiqa_io.py").is_file()
    assert config["id2label"] == {"0": "poor", "1": "acceptable", "2": "good"}
    assert config["quality_bands"]["thresholds"] == [40.0, 70.0]
    from huggingface_hub import ModelCard

    card = ModelCard.load(folder / "README.md")  # a generic card from the packaging step
    assert card.data.library_name == "transformers" and "hf-fiqa" in card.data.tags


def test_quality_bands_from_label_range_and_calibration():
    config = MANIQAConfig.tiny(label_range=[0, 10])
    assert quality_0_100(np.array([5.0, 12.0, -1.0]), config).tolist() == [50.0, 100.0, 0.0]
    calibrated = MANIQAConfig.tiny(quality_calibration=CALIBRATION)
    np.testing.assert_allclose(quality_0_100(np.array([0.5, 0.6]), calibrated), [50.0, 100 / (1 + np.exp(-1.0))])
    for quality in (5.0, 39.0, 41.5, 55.0, 69.0, 71.0, 99.0):
        entries = band_scores(quality)
        assert entries[0]["label"] == band_of(quality)
        assert abs(sum(e["score"] for e in entries) - 1.0) < 1e-9
    assert band_of(40.0) == "acceptable" and band_of(70.0) == "good" and band_of(39.99) == "poor"
    with pytest.raises(ValueError, match="quality_bands"):
        MANIQAConfig.tiny(quality_bands={"labels": ["a", "b"], "thresholds": [80, 20]})
    custom = MANIQAConfig.tiny(quality_bands={"labels": ["bad", "ok"], "thresholds": [50]})
    assert custom.id2label == {0: "bad", 1: "ok"} and custom.label2id == {"bad": 0, "ok": 1}


def test_image_classification_returns_bands_from_calibrated_quality(tmp_path):
    from transformers import pipeline

    folder = _save_maniqa(tmp_path / "calibrated", quality_calibration=CALIBRATION)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)
    bands = pipeline("image-classification", model=str(folder), trust_remote_code=True)
    out = bands(image, return_quality=True)
    assert [e["label"] for e in out] and {e["label"] for e in out} == {"poor", "acceptable", "good"}
    model = MANIQAForImageQualityAssessment.from_pretrained(folder).eval()
    processor = MANIQAImageProcessor.from_pretrained(folder)
    with torch.no_grad():
        quality = float(model(**{k: v for k, v in processor([image]).items() if k != "crop_to_image"}).quality[0])
    assert out[0]["quality"] == pytest.approx(quality, abs=1e-4)
    assert out[0]["label"] == band_of(quality)
    assert bands(image, top_k=1)[0]["label"] == out[0]["label"]


@pytest.mark.slow
def test_pipelines_run_without_hf_fiqa(folder, couple, yunet_weights, tmp_path):
    done = subprocess.run([sys.executable, "-c", WITHOUT_PACKAGE, str(folder), str(couple)],
                          env=_isolated_env(tmp_path, HF_FIQA_DETECTOR_WEIGHTS=str(yunet_weights)),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["class"] == "StandaloneFaceQualityPipeline"
    remote = result["record"]
    assert remote["error"] is None and len(remote["faces"]) == 2
    assert result["bands"][0]["label"] in {"poor", "acceptable", "good"}
    assert result["aligned"][0]["quality"] is not None
    assert result["broken"]["error"] and "not a recognised image format" in result["broken"]["error"]

    # The package's pipeline gives the same faces and the same scores.
    from transformers import pipeline

    import hf_fiqa  # noqa: F401

    local = pipeline("face-image-quality", model=str(folder), trust_remote_code=True,
                     detector_weights=str(yunet_weights))(str(couple))
    assert len(local["faces"]) == len(remote["faces"])
    for a, b in zip(local["faces"], remote["faces"]):
        np.testing.assert_allclose(a["box"], b["box"], atol=0.02)
        np.testing.assert_allclose(a["landmarks"], b["landmarks"], atol=0.02)
        assert a["detection_score"] == pytest.approx(b["detection_score"], abs=1e-4)
        assert a["quality"] == pytest.approx(b["quality"], abs=1e-5)


@pytest.mark.slow
def test_remote_pipeline_weights_from_offline_hf_cache_or_clear_error(folder, couple, yunet_weights, tmp_path):
    cache = tmp_path / "hub"
    snap = cache / "models--opencv--face_detection_yunet" / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    shutil.copyfile(yunet_weights, snap / "face_detection_yunet_2023mar.onnx")
    (cache / "models--opencv--face_detection_yunet" / "refs").mkdir()
    (cache / "models--opencv--face_detection_yunet" / "refs" / "main").write_text("0" * 40)
    done = subprocess.run([sys.executable, "-c", WITHOUT_PACKAGE, str(folder), str(couple)],
                          env=_isolated_env(tmp_path, HF_HUB_CACHE=str(cache)), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(json.loads(done.stdout.strip().splitlines()[-1])["record"]["faces"]) == 2

    done = subprocess.run([sys.executable, "-c", WITHOUT_PACKAGE, str(folder), str(couple)],
                          env=_isolated_env(tmp_path, HF_HUB_CACHE=str(tmp_path / "empty")), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode != 0
    assert "HF_FIQA_DETECTOR_WEIGHTS" in done.stderr and "opencv/face_detection_yunet" in done.stderr


def test_model_card_fiqa_results_parse(folder, tmp_path):
    from huggingface_hub import ModelCard

    target = tmp_path / "card"
    shutil.copytree(folder, target)
    results = {"step": 120, "srcc": 0.41, "pauc_fmr=1e-3": 0.0123, "pauc_fnmr=0.05": 0.0456, "genuine_pairs": 400}
    write_model_card(target, task="fiqa", results=results, datasets=["org/lfw-aligned"],
                     command="accelerate launch train.py --config hub_configs/maniqa-sdd-fiqa.yaml",
                     base_model="org/maniqa-koniq", eval_dataset={"name": "CelebA unseen identities", "type": "celeba"})
    card = ModelCard.load(target / "README.md")
    data = card.data
    assert data.license == "apache-2.0" and data.library_name == "transformers"
    assert data.pipeline_tag == "image-classification" and "sdd-fiqa" in data.tags
    assert data.datasets == ["org/lfw-aligned"] and data.base_model == "org/maniqa-koniq"
    values = {r.metric_name: r.metric_value for r in data.eval_results}
    assert values["EDC pAUC (fmr=1e-3)"] == 0.0123 and values["EDC pAUC (fnmr=0.05)"] == 0.0456
    assert values["SRCC"] == 0.41 and len(values) == 3  # step / pair counts are not metrics
    assert all(r.dataset_name == "CelebA unseen identities" for r in data.eval_results)
    for section in ("## Intended use", "## How to score", "## Limitations and known biases", "## Training data",
                    "hub_configs/maniqa-sdd-fiqa.yaml", "image-classification", "good"):
        assert section in card.text


def test_model_card_mos_and_recognition(tmp_path):
    from huggingface_hub import ModelCard

    (tmp_path / "iqa").mkdir()
    (tmp_path / "iqa" / "config.json").write_text(json.dumps({"model_type": "musiq", "label_range": [1, 5]}))
    write_model_card(tmp_path / "iqa", results={"srcc": 0.9, "plcc": 0.91}, datasets=["koniq10k"])
    card = ModelCard.load(tmp_path / "iqa" / "README.md")
    assert {r.metric_type for r in card.data.eval_results} == {"spearmanr", "pearsonr"}
    (tmp_path / "rec").mkdir()
    (tmp_path / "rec" / "config.json").write_text(json.dumps({"model_type": "iresnet", "embedding_size": 512}))
    write_model_card(tmp_path / "rec", results={"eer": 0.03}, converted_from="magface_iresnet100.pth",
                     command="hf-fiqa convert iresnet magface_iresnet100.pth models/magface-r100 --layout magface")
    card = ModelCard.load(tmp_path / "rec" / "README.md")
    assert card.data.pipeline_tag == "image-feature-extraction"
    assert card.data.eval_results[0].metric_type == "eer" and "magface_iresnet100.pth" in card.text
    with pytest.raises(ValueError, match="task"):
        write_model_card(tmp_path / "rec", task="segmentation")
