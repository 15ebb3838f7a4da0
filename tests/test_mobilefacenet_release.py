"""foamliu/MobileFaceNet (MS1M-refine) converted from its ONNX release: parity with onnxruntime on real faces, the
saved folder loads without hf-fiqa, and a file that is not that network is refused with a reason."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from hf_fiqa.embedding.embedder import RecognitionEmbedder
from hf_fiqa.faces import FaceCropper, YuNetDetector
from hf_fiqa.models.conversion import CheckpointError
from hf_fiqa.models.mobilefacenet import MobileFaceNetConfig, MobileFaceNetModel
from hf_fiqa.models.mobilefacenet.convert_mobilefacenet import convert_mobilefacenet_checkpoint, convert_onnx_graph

ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def release(shared):
    path = shared / "weights" / "mobilefacenet" / "MobileFaceNet.onnx"
    if not path.is_file():
        pytest.skip(f"MobileFaceNet release not found at {path}")
    return path


@pytest.fixture(scope="module")
def converted(release, tmp_path_factory):
    folder = tmp_path_factory.mktemp("mobilefacenet")
    return folder, convert_mobilefacenet_checkpoint(release, folder)


@pytest.fixture(scope="module")
def faces(shared, yunet_weights):
    """112 px ArcFace-template crops of 12 LFW photos (YuNet's five points)."""
    rows = list(csv.DictReader((shared / "data" / "lfw" / "labels.csv").open()))[:600:50]
    cropper = FaceCropper(YuNetDetector(str(yunet_weights)))
    crops = [cropper(str(shared / "data" / "lfw" / r["path"]), specs=[112], select="largest") for r in rows]
    return [c.crops[112][0].crop for c in crops if c.faces]


def test_matches_onnxruntime_on_real_faces(release, converted, faces):
    folder, model = converted
    embedder = RecognitionEmbedder(str(folder), device="cpu")
    assert embedder.crop_template is None and embedder.crop_size == 112  # ArcFace's template
    pixels = embedder.image_processor(faces, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        ours = model(pixel_values=pixels).embeddings.numpy()
    session = ort.InferenceSession(str(release), providers=["CPUExecutionProvider"])
    reference = np.concatenate([session.run(None, {"input0": pixels[i:i + 1].numpy()})[0] for i in range(len(faces))])
    assert len(faces) >= 10 and ours.shape == reference.shape == (len(faces), 128)
    assert np.abs(ours - reference).max() <= 1e-4
    # the same numbers through the package's embedder (its processor: RGB, ImageNet mean/std)
    np.testing.assert_allclose(embedder.embed_crops(faces), ours, atol=1e-5)


def test_saved_folder_loads_with_remote_code(converted, faces):
    from transformers import AutoImageProcessor, AutoModel

    folder, model = converted
    loaded = AutoModel.from_pretrained(str(folder), trust_remote_code=True).eval()
    processor = AutoImageProcessor.from_pretrained(str(folder), trust_remote_code=True)
    assert loaded.config.activation == "relu6" and loaded.config.stem_separable
    assert tuple(processor.image_mean) == (0.485, 0.456, 0.406)
    pixels = processor(faces[:2], return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        torch.testing.assert_close(loaded(pixel_values=pixels).embeddings, model(pixel_values=pixels).embeddings)


def test_a_file_that_is_not_the_release_is_refused(tmp_path):
    bad = tmp_path / "garbage.onnx"
    bad.write_bytes(b"\x08\x07garbage that is not a protobuf model" * 10)
    with pytest.raises(CheckpointError, match="garbage.onnx"):
        convert_onnx_graph(bad)
    with pytest.raises(FileNotFoundError):
        convert_onnx_graph(tmp_path / "missing.onnx")


def test_an_onnx_export_of_another_layout_is_refused(tmp_path):
    """A PReLU MobileFaceNet exported to ONNX has no ReLU6 (Clip) nodes: named, not silently mis-loaded."""
    torch.manual_seed(0)
    other = MobileFaceNetModel(MobileFaceNetConfig(embedding_size=128, blocks=(1, 1, 1))).eval()
    path = tmp_path / "other.onnx"
    torch.onnx.export(other, (torch.zeros(1, 3, 112, 112),), str(path), input_names=["input0"], dynamo=False)
    with pytest.raises(CheckpointError, match="Clip|Conv"):
        convert_onnx_graph(path)
