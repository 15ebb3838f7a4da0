"""dlib's ResNet face recognizer as a transformers model: reader, model, processor, parity with dlib.

Three tiers:

* offline (always): tiny random models, processor behaviour, remote-code round trip, reader
  errors on synthetic bytes;
* with the PyPI package ``face-recognition-models`` (the released ``.dat`` files): conversion of
  the real weights (once per module), errors on the shape predictor / MMOD detector / truncated
  copies, bf16 and channels-last agreement;
* with ``dlib`` and the shared photos as well: descriptors within 1e-4 of dlib's own on chips dlib
  cut from real photos, and our chip geometry helper against dlib's chips.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hf_fiqa.models.conversion import CheckpointError
from hf_fiqa.models.dlib_resnet import (
    DLIB_IMAGE_MEAN,
    DlibResNetConfig,
    DlibResNetImageProcessor,
    DlibResNetModel,
    add_zero_padded,
)
from hf_fiqa.models.dlib_resnet.chip_template import (
    cut_dlib_chip,
    dlib_chip_affine,
    similarity_to_template,
    transform_points,
)
from hf_fiqa.models.dlib_resnet.convert_dlib_resnet import (
    DAT_FILENAME,
    convert_dlib_resnet_checkpoint,
    read_dlib_resnet_dat,
)


def _models_dir() -> Path | None:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "models"
    return folder if (folder / DAT_FILENAME).is_file() else None


def tiny_config() -> DlibResNetConfig:
    return DlibResNetConfig(stem_width=4, stage_widths=(4, 8, 8), stage_blocks=(1, 2, 1), embedding_size=8, image_size=40)


@pytest.fixture(scope="module")
def dlib_models_dir() -> Path:
    folder = _models_dir()
    if folder is None:
        pytest.skip("face-recognition-models (dlib's released .dat files) is not installed: pip install face-recognition-models")
    return folder


@pytest.fixture(scope="module")
def converted(dlib_models_dir, tmp_path_factory):
    """The released network converted once per module: ``(folder, model)``."""
    folder = tmp_path_factory.mktemp("dlib-resnet")
    model = convert_dlib_resnet_checkpoint(None, folder)
    return folder, model


@pytest.fixture(scope="module")
def dlib_module():
    return pytest.importorskip("dlib", reason="dlib is not installed (pip install dlib-bin) - parity with dlib is not checked")


@pytest.fixture(scope="module")
def dlib_chips(dlib_module, dlib_models_dir, shared):
    """150x150 chips cut by dlib itself (HOG detector, 5-point predictor, get_face_chip) from real photos."""
    import csv

    detector = dlib_module.get_frontal_face_detector()
    predictor = dlib_module.shape_predictor(str(dlib_models_dir / "shape_predictor_5_face_landmarks.dat"))
    chips, shapes = [], []
    for dataset, count in (("lfw", 6), ("celeba-wild-ids", 2)):
        folder = shared / "data" / dataset
        if not (folder / "labels.csv").is_file():
            pytest.skip(f"shared photos not found at {folder}")
        with open(folder / "labels.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
        # Spread over identities; small CelebA photos keep HOG detection fast.
        for row in rows[:: max(1, len(rows) // 40)]:
            if sum(1 for d, _ in shapes if d == dataset) >= count:
                break
            with Image.open(folder / row["path"]) as image:
                if max(image.size) > 500:
                    continue
                rgb = np.asarray(image.convert("RGB"))
            found = list(detector(rgb, 1))
            if not found:
                continue
            shape = predictor(rgb, max(found, key=lambda r: r.area()))
            chips.append(np.asarray(dlib_module.get_face_chip(rgb, shape, size=150, padding=0.25)))
            shapes.append((dataset, (rgb, shape)))
    assert len(chips) >= 6, "dlib found too few faces in the shared photos"
    return chips, [s for _, s in shapes]


# --------------------------------------------------------------------------------------------
# Config and model (offline)
# --------------------------------------------------------------------------------------------


def test_config_defaults_are_the_released_network():
    config = DlibResNetConfig()
    assert config.stage_widths == [32, 64, 128, 256, 256]
    assert config.stage_blocks == [3, 4, 3, 3, 1]
    assert config.image_size == 150 and config.embedding_size == 128
    assert config.feature_map_size == 2  # 150 -> 72 -> 35 -> 17 -> 8 -> 4 -> 2
    template = np.asarray(config.alignment_template)
    assert template.shape == (5, 2)
    assert (template > 0).all() and (template < 150).all(), "the measured template must lie inside the chip"
    assert template[0, 0] < template[1, 0] and template[3, 0] < template[4, 0], "image-left points come first"
    assert template[0, 1] < template[2, 1] < template[3, 1], "eyes above nose above mouth"
    np.testing.assert_allclose(np.asarray(config.alignment_template_unit) * 150, template)


@pytest.mark.parametrize(
    "kwargs",
    [dict(stage_blocks=(1, 2)), dict(stage_widths=(0, 1)), dict(image_size=10), dict(alignment_template=[[0, 0]] * 4)],
)
def test_config_rejects_inconsistent_values(kwargs):
    with pytest.raises(ValueError):
        DlibResNetConfig(**kwargs)


def test_add_zero_padded_follows_dlibs_add_prev():
    a = torch.arange(2 * 3 * 3 * 3, dtype=torch.float32).reshape(2, 3, 3, 3)
    b = torch.ones(2, 2, 4, 4)
    out = add_zero_padded(a, b)
    assert out.shape == (2, 3, 4, 4)
    expected = torch.zeros(2, 3, 4, 4)
    expected[:, :3, :3, :3] += a
    expected[:, :2] += 1
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


def test_tiny_model_shapes_and_input_checks():
    torch.manual_seed(0)
    model = DlibResNetModel(tiny_config()).eval()
    with torch.inference_mode():
        out = model(torch.randn(3, 3, 40, 40))
    assert out.embeddings.shape == (3, 8) and out.embeddings.dtype == torch.float32
    torch.testing.assert_close(out.norms, out.embeddings.norm(dim=1))
    with pytest.raises(ValueError, match="pixel_values must be"):
        model(torch.randn(1, 3, 41, 41))
    with pytest.raises(ValueError, match="pixel_values must be"):
        model(torch.randn(3, 40, 40))


def test_embed_batches_channels_last_and_bf16_agree():
    torch.manual_seed(0)
    model = DlibResNetModel(tiny_config()).eval()
    x = torch.randn(5, 3, 40, 40)
    with torch.inference_mode():
        reference = model(x).embeddings
    torch.testing.assert_close(model.embed(x, batch_size=2, channels_last=True), reference, rtol=1e-5, atol=1e-5)
    low = model.embed(x, batch_size=4, bf16=True)
    assert low.dtype == torch.float32
    assert (low - reference).norm(dim=1).max() < 0.05 * reference.norm(dim=1).max()
    assert model.embed(x[:0]).shape == (0, 8)


# --------------------------------------------------------------------------------------------
# Image processor (offline)
# --------------------------------------------------------------------------------------------


def test_processor_applies_dlibs_input_scaling_exactly():
    processor = DlibResNetImageProcessor()
    rng = np.random.default_rng(0)
    chip = rng.integers(0, 256, (150, 150, 3), dtype=np.uint8)
    pixels = processor(chip)["pixel_values"]
    assert pixels.shape == (1, 3, 150, 150) and pixels.dtype == torch.float32
    mean = np.asarray(DLIB_IMAGE_MEAN, dtype=np.float32)
    expected = ((chip.astype(np.float32) - mean) / np.float32(256.0)).transpose(2, 0, 1)
    np.testing.assert_array_equal(pixels[0].numpy(), expected)  # bit-exact, as dlib computes it


def test_processor_handles_grey_alpha_and_odd_sizes():
    processor = DlibResNetImageProcessor()
    rng = np.random.default_rng(1)
    grey = rng.integers(0, 256, (150, 150), dtype=np.uint8)
    rgb_of_grey = np.repeat(grey[:, :, None], 3, axis=2)
    expected = processor(rgb_of_grey)["pixel_values"]
    for variant in (grey, grey[:, :, None], Image.fromarray(grey, mode="L"), np.dstack([grey, grey])):
        torch.testing.assert_close(processor(variant)["pixel_values"], expected, rtol=0, atol=0)
    rgb = rng.integers(0, 256, (150, 150, 3), dtype=np.uint8)
    rgba = np.dstack([rgb, rng.integers(0, 256, (150, 150), dtype=np.uint8)])
    torch.testing.assert_close(processor(rgba)["pixel_values"], processor(rgb)["pixel_values"], rtol=0, atol=0)
    torch.testing.assert_close(
        processor(Image.fromarray(rgba, mode="RGBA"))["pixel_values"], processor(rgb)["pixel_values"], rtol=0, atol=0
    )
    # Any size becomes 150x150; a uniform chip stays uniform through the resize.
    batch = processor([np.full((75, 75, 3), 128, np.uint8), np.full((300, 200, 3), 128, np.uint8), rgb])
    assert batch["pixel_values"].shape == (3, 3, 150, 150)
    for i in range(2):
        torch.testing.assert_close(batch["pixel_values"][i], processor(np.full((150, 150, 3), 128, np.uint8))["pixel_values"][0])
    # A (B, H, W, 3) array is a batch; torch tensors are accepted like arrays.
    assert processor(np.stack([rgb, rgb]))["pixel_values"].shape[0] == 2
    torch.testing.assert_close(processor(torch.from_numpy(rgb))["pixel_values"], processor(rgb)["pixel_values"])


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros((150, 150, 3), np.float32), "8-bit"),
        (np.zeros((150, 150, 5), np.uint8), "shape"),
        (np.full((150, 150, 3), 300, np.int32), "0..255"),
        (np.zeros((0, 150, 3), np.uint8), "empty"),
    ],
)
def test_processor_rejects_what_it_cannot_read(bad, match):
    with pytest.raises(ValueError, match=match):
        DlibResNetImageProcessor()(bad)


def test_processor_reads_paths(tmp_path):
    rgb = np.random.default_rng(2).integers(0, 256, (150, 150, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "chip.png")
    processor = DlibResNetImageProcessor()
    torch.testing.assert_close(processor(str(tmp_path / "chip.png"))["pixel_values"], processor(rgb)["pixel_values"])
    with pytest.raises(ValueError, match="cannot be read"):
        processor(str(tmp_path / "missing.png"))


# --------------------------------------------------------------------------------------------
# Remote-code round trip (fresh interpreter that cannot import hf_fiqa)
# --------------------------------------------------------------------------------------------

_REMOTE_SCRIPT = textwrap.dedent(
    """
    import importlib.abc, json, sys
    import numpy as np

    class _NoHfFiqa(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "hf_fiqa" or name.startswith("hf_fiqa."):
                raise ImportError("hf_fiqa is blocked in this interpreter")
            return None

    sys.meta_path.insert(0, _NoHfFiqa())
    import torch
    from transformers import AutoImageProcessor, AutoModel

    folder, chips_path, out_path = sys.argv[1:4]
    model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    processor = AutoImageProcessor.from_pretrained(folder, trust_remote_code=True)
    chips = np.load(chips_path)
    with torch.inference_mode():
        emb = model(**processor(list(chips), return_tensors="pt")).embeddings
    np.save(out_path, emb.numpy())
    json.dump({"model": type(model).__name__, "processor": type(processor).__name__,
               "hf_fiqa_loaded": any(m.startswith("hf_fiqa") for m in sys.modules)}, sys.stdout)
    """
)


def _remote_embeddings(folder: Path, chips: np.ndarray, tmp_path: Path) -> tuple[np.ndarray, dict]:
    chips_path, out_path = tmp_path / "chips.npy", tmp_path / "emb.npy"
    np.save(chips_path, chips)
    env = dict(os.environ, HF_MODULES_CACHE=str(tmp_path / "modules"), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    result = subprocess.run(
        [sys.executable, "-c", _REMOTE_SCRIPT, str(folder), str(chips_path), str(out_path)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return np.load(out_path), json.loads(result.stdout.strip().splitlines()[-1])


def _check_saved_folder(folder: Path) -> None:
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "dlib_resnet"
    assert set(config["auto_map"]) >= {"AutoConfig", "AutoModel"}
    processor = json.loads((folder / "preprocessor_config.json").read_text())
    assert "AutoImageProcessor" in processor["auto_map"]
    for name in ("configuration_dlib_resnet.py", "modeling_dlib_resnet.py", "image_processing_dlib_resnet.py"):
        assert (folder / name).is_file(), name
    assert (folder / "model.safetensors").is_file()


def test_tiny_model_round_trips_through_remote_code(tmp_path):
    torch.manual_seed(0)
    model = DlibResNetModel(tiny_config()).eval()
    processor = DlibResNetImageProcessor(size=40)
    folder = tmp_path / "tiny"
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    _check_saved_folder(folder)
    chips = np.random.default_rng(3).integers(0, 256, (3, 40, 40, 3), dtype=np.uint8)
    remote, info = _remote_embeddings(folder, chips, tmp_path)
    assert info == {"model": "DlibResNetModel", "processor": "DlibResNetImageProcessor", "hf_fiqa_loaded": False}
    with torch.inference_mode():
        local = model(**processor(list(chips))).embeddings.numpy()
    np.testing.assert_allclose(remote, local, rtol=0, atol=1e-6)


def test_model_card_gives_the_weights_public_domain_licence(tmp_path):
    from huggingface_hub import ModelCard

    from hf_fiqa.hub import write_model_card

    DlibResNetModel(tiny_config()).save_pretrained(tmp_path)
    data = ModelCard.load(write_model_card(tmp_path, task="recognition")).data
    assert (data.license, data.license_name) == ("other", "public-domain")


# --------------------------------------------------------------------------------------------
# Reader errors on synthetic bytes (offline)
# --------------------------------------------------------------------------------------------


def _dlib_int(value: int) -> bytes:
    magnitude = abs(value).to_bytes(max(1, (abs(value).bit_length() + 7) // 8), "little")
    return bytes([len(magnitude) | (0x80 if value < 0 else 0)]) + magnitude


def _dlib_string(text: str) -> bytes:
    return _dlib_int(len(text)) + text.encode()


@pytest.mark.parametrize(
    "payload, match",
    [
        (b"", "empty"),
        (np.random.default_rng(4).bytes(4096), "byte offset"),
        (_dlib_int(1) + _dlib_string("loss_mmod_") + b"\x01\x01", "loss_mmod_"),
        (_dlib_int(1) + _dlib_string("loss_metric_"), "truncated"),
        (_dlib_int(7), "add_loss_layer version 7"),
    ],
    ids=["empty", "random-bytes", "other-loss", "truncated-header", "bad-version"],
)
def test_reader_rejects_malformed_files(tmp_path, payload, match):
    path = tmp_path / "bad.dat"
    path.write_bytes(payload)
    with pytest.raises(CheckpointError, match=match) as info:
        read_dlib_resnet_dat(path)
    assert str(path) in str(info.value)


def test_reader_reports_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no such"):
        convert_dlib_resnet_checkpoint(tmp_path / "nope.dat", tmp_path / "out")


# --------------------------------------------------------------------------------------------
# The released file (needs face-recognition-models)
# --------------------------------------------------------------------------------------------


def test_released_file_converts_with_dlibs_constants(converted, dlib_models_dir):
    folder, model = converted
    _check_saved_folder(folder)
    weights = read_dlib_resnet_dat(dlib_models_dir / DAT_FILENAME)
    assert len(weights.state_dict) == 59  # 29 convolutions (weight + folded bias) + fc
    assert weights.image_size == 150
    np.testing.assert_array_equal(np.float32(weights.image_mean), np.float32(DLIB_IMAGE_MEAN))
    assert weights.distance_threshold == pytest.approx(0.6)
    processor = DlibResNetImageProcessor.from_pretrained(folder)
    assert processor.image_mean == list(weights.image_mean) and processor.size == 150
    assert model.config.distance_threshold == pytest.approx(0.6)


@pytest.mark.parametrize(
    "name, match",
    [
        ("shape_predictor_5_face_landmarks.dat", "byte offset 2 "),
        ("mmod_human_face_detector.dat", "loss_mmod_"),
    ],
)
def test_other_dlib_networks_are_refused(dlib_models_dir, name, match):
    path = dlib_models_dir / name
    if not path.is_file():
        pytest.skip(f"{name} is not part of this face-recognition-models")
    with pytest.raises(CheckpointError, match=match) as info:
        read_dlib_resnet_dat(path)
    assert str(path) in str(info.value)


def test_truncated_and_padded_copies_are_refused(dlib_models_dir, tmp_path):
    data = (dlib_models_dir / DAT_FILENAME).read_bytes()
    cut = tmp_path / "truncated.dat"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.raises(CheckpointError, match=r"truncated at byte offset \d+ .* while reading layer \d+ \(con, stages\."):
        read_dlib_resnet_dat(cut)
    header_cut = tmp_path / "header.dat"
    header_cut.write_bytes(data[:300])
    with pytest.raises(CheckpointError, match="truncated"):
        read_dlib_resnet_dat(header_cut)
    padded = tmp_path / "padded.dat"
    padded.write_bytes(data + b"\x00\x01")
    with pytest.raises(CheckpointError, match="2 unexpected bytes after the complete network"):
        read_dlib_resnet_dat(padded)
    renamed = tmp_path / "renamed.dat"
    renamed.write_bytes(data.replace(b"\x05con_4", b"\x05con_9", 1))
    with pytest.raises(CheckpointError, match="con_9"):
        read_dlib_resnet_dat(renamed)


def test_released_model_round_trips_through_remote_code(converted, tmp_path):
    folder, model = converted
    chips = np.random.default_rng(5).integers(0, 256, (2, 150, 150, 3), dtype=np.uint8)
    remote, info = _remote_embeddings(folder, chips, tmp_path)
    assert info["hf_fiqa_loaded"] is False
    processor = DlibResNetImageProcessor.from_pretrained(folder)
    with torch.inference_mode():
        local = model(**processor(list(chips))).embeddings.numpy()
    np.testing.assert_allclose(remote, local, rtol=0, atol=1e-6)


def test_released_model_fast_paths_agree(converted):
    _, model = converted
    pixels = DlibResNetImageProcessor()(list(np.random.default_rng(6).integers(0, 256, (4, 150, 150, 3), dtype=np.uint8)))
    pixels = pixels["pixel_values"]
    with torch.inference_mode():
        reference = model(pixels).embeddings
    fast = model.embed(pixels, batch_size=3, channels_last=True)
    torch.testing.assert_close(fast, reference, rtol=0, atol=2e-5)
    low = model.embed(pixels, bf16=True)
    cosine = torch.nn.functional.cosine_similarity(low, reference)
    assert cosine.min() > 0.995
    model.to(memory_format=torch.contiguous_format)


# --------------------------------------------------------------------------------------------
# Parity with dlib on real photos (needs dlib, face-recognition-models and the shared data)
# --------------------------------------------------------------------------------------------


def test_descriptors_match_dlib_on_real_chips(converted, dlib_chips, dlib_module, dlib_models_dir):
    _, model = converted
    chips, _ = dlib_chips
    recognizer = dlib_module.face_recognition_model_v1(str(dlib_models_dir / DAT_FILENAME))
    expected = np.array([np.asarray(recognizer.compute_face_descriptor(chip)) for chip in chips])
    batched = np.array([np.asarray(d) for d in recognizer.compute_face_descriptor(chips)])
    np.testing.assert_allclose(batched, expected, rtol=0, atol=1e-6)
    processor = DlibResNetImageProcessor()
    with torch.inference_mode():
        ours = model(**processor(chips)).embeddings.double().numpy()
    assert np.abs(ours - expected).max() < 1e-4
    # Greyscale chips: dlib's C++ replicates grey to RGB (assign_image); its Python binding
    # takes RGB only, so it gets the replicated chip and the processor the (H, W) grey array.
    grey = np.asarray(Image.fromarray(chips[0]).convert("L"))
    with torch.inference_mode():
        ours_grey = model(**processor(grey)).embeddings.double().numpy()[0]
    dlib_grey = np.asarray(recognizer.compute_face_descriptor(np.ascontiguousarray(np.dstack([grey] * 3))))
    assert np.abs(ours_grey - dlib_grey).max() < 1e-4


def test_chip_affine_reproduces_dlibs_chips(dlib_chips, dlib_module):
    chips, shapes = dlib_chips
    for chip, (rgb, shape) in zip(chips[:3], shapes[:3]):
        details = dlib_module.get_face_chip_details(shape, 150, 0.25)
        rect = details.rect
        matrix = dlib_chip_affine((rect.left(), rect.top(), rect.right(), rect.bottom()), details.angle, 150, 150)
        import cv2

        ours = cv2.warpAffine(rgb, matrix, (150, 150), flags=cv2.INTER_LINEAR)
        # Differences come only from rounding of the bilinear weights (and the pyramid dlib
        # uses for shrinking, not reached at these scales).
        assert np.abs(ours.astype(int) - chip.astype(int)).mean() < 1.5
        # The inverse direction: dlib's own landmarks land where its template puts them (roughly).
        eyes = transform_points(matrix, np.array([[p.x, p.y] for p in shape.parts()])[[0, 2]])
        assert 95 < eyes[0, 0] < 125 and 25 < eyes[1, 0] < 50


def test_cut_dlib_chip_uses_the_template():
    template = np.asarray(DlibResNetConfig().alignment_template)
    # Landmarks of a face twice the chip size, shifted and rotated by 10 degrees.
    angle = np.deg2rad(10.0)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    landmarks = (template * 2.0) @ rot.T + np.array([40.0, 25.0])
    matrix = similarity_to_template(landmarks, template)
    np.testing.assert_allclose(transform_points(matrix, landmarks), template, atol=1e-9)
    photo = np.zeros((400, 400, 3), np.uint8)
    photo[150:250, 150:250] = 255
    chip = cut_dlib_chip(photo, landmarks)
    assert chip.shape == (150, 150, 3) and chip.dtype == np.uint8
