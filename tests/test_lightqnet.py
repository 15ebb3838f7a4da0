"""LightQNet converted from its released TensorFlow graph: the same numbers as TensorFlow on real faces (outputs
computed once with TensorFlow, ``tests/fixtures/lightqnet/tf_reference.npz``), no TensorFlow here, and the
converted folder is an ordinary quality model (scorer, remote code, 3-point alignment)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from hf_fiqa.models.conversion import CheckpointError
from hf_fiqa.models.lightqnet.convert_lightqnet import (
    convert_lightqnet_checkpoint,
    convert_lightqnet_graph,
    find_lightqnet_graph,
)

FIXTURE = Path(__file__).parent / "fixtures" / "lightqnet" / "tf_reference.npz"
pytest.importorskip("tensorboard", reason="the GraphDef schema comes from the tensorboard package")


def _fixture_script():
    spec = importlib.util.spec_from_file_location("make_lightqnet_fixture", FIXTURE.parent / "make_lightqnet_fixture.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    release = find_lightqnet_graph()
    if release is None:
        pytest.skip("LightQNet's graph is neither in shared/weights/lightqnet nor in third_party/lightqnet")
    folder = tmp_path_factory.mktemp("lightqnet")
    return folder, convert_lightqnet_checkpoint(release, folder)


def test_matches_tensorflow_on_real_faces(shared, converted):
    from hf_fiqa.models.iresnet.image_processing_iresnet import IResNetImageProcessor

    reference = np.load(FIXTURE)
    crops = [_fixture_script().window_crop(shared / "data" / str(p)) for p in reference["photos"]]
    folder, model = converted
    pixels = IResNetImageProcessor.from_pretrained(folder)(crops, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        out = model(pixel_values=pixels)
    np.testing.assert_allclose(out.logits.numpy(), reference["logits"], atol=1e-4)
    np.testing.assert_allclose(out.score.numpy(), reference["quality"], atol=1e-5)
    assert reference["quality"].max() - reference["quality"].min() > 0.3  # the faces differ: a real check


def test_scores_photos_as_a_quality_model(shared, yunet_weights, converted):
    """Through load_scorer and the face pipeline: 96 px crops on LightQNet's eye/mouth-centre template."""
    from hf_fiqa.pipelines.face_quality import FaceQualityAnalyzer
    from hf_fiqa.scorers import crop_spec, load_scorer

    folder, _ = converted
    scorer = load_scorer(str(folder), device="cpu")
    spec = crop_spec(scorer)
    assert spec.size == 96 and len(spec.template) == 3
    analyzer = FaceQualityAnalyzer(scorer, detector_weights=str(yunet_weights))
    frontal, profile = (str(shared / "data" / "cfp" / "images" / "001" / pose / "01.jpg") for pose in ("frontal", "profile"))
    records = list(analyzer.iter_records([frontal, profile]))
    qualities = [r["faces"][0]["quality"] for r in records]
    assert all(0 <= q <= 1 for q in qualities) and qualities[0] > qualities[1]


def test_remote_code_folder_loads_without_the_package_classes(converted):
    from transformers import AutoModel

    folder, model = converted
    loaded = AutoModel.from_pretrained(str(folder), trust_remote_code=True).eval()
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        torch.testing.assert_close(loaded(pixel_values=x).score, model(pixel_values=x).score)


def test_not_a_graph_is_refused(tmp_path):
    bad = tmp_path / "bad.pb"
    bad.write_bytes(b"\xff\xfe not a protobuf \x00" * 7)
    with pytest.raises(CheckpointError, match="bad.pb"):
        convert_lightqnet_graph(bad)
    with pytest.raises(FileNotFoundError):
        convert_lightqnet_graph(tmp_path / "missing.pb")
