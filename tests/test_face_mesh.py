"""MediaPipe's face mesh as a transformers model: config, model, crop geometry, conversion, parity with TFLite.

Tiers:

* offline (always): config checks, tiny random models, the crop/projection geometry, the runner's
  mapping back to the photo (rotation equivariance), remote-code round trip, reader errors;
* with ``face_landmark.tflite`` (``$HF_FIQA_FACE_MESH_SRC``: the ``mediapipe==0.10.14`` wheel or the
  extracted file; unset, the wheel ``scripts/setup.sh`` downloads into ``.whl/mediapipe``, then an installed
  mediapipe; ``pip download mediapipe==0.10.14 --no-deps -d DIR`` fetches the wheel) and the
  ``tflite`` package (``hf-fiqa[convert]``): conversion from wheel and from file, ``hf-fiqa convert face-mesh``,
  errors on foreign files; ``$HF_FIQA_FACE_MESH_MODEL`` may name an already converted folder instead;
* with the shared photos as well: landmarks within 1e-3 crop pixels of ai-edge-litert's on real
  faces (``tests/fixtures/face_mesh/litert_reference.npz``, written by ``make_face_mesh_fixture.py``
  beside it), and eyes, nose and mouth landing on YuNet's points in photo coordinates.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from hf_fiqa.models.conversion import CheckpointError
from hf_fiqa.models.face_mesh import (
    FaceMeshConfig,
    FaceMeshImageProcessor,
    FaceMeshLandmarker,
    FaceMeshModel,
    crop_rois,
    face_mesh_rois,
    project_landmarks,
    roi_to_photo,
    rois_from_landmarks,
)
from hf_fiqa.models.face_mesh.convert_face_mesh import (
    SOURCE_ENV,
    WHEEL_MEMBER,
    convert_face_mesh_checkpoint,
    find_face_mesh_source,
    read_face_mesh_tflite,
    read_tflite_bytes,
)
from hf_fiqa.models.face_mesh.modeling_face_mesh import max_pool_2x2

FIXTURE = Path(__file__).parent / "fixtures" / "face_mesh" / "litert_reference.npz"
WHEEL_CACHE = Path(__file__).resolve().parents[1] / ".whl" / "mediapipe"  # scripts/setup.sh downloads it here
MODEL_ENV = "HF_FIQA_FACE_MESH_MODEL"
LEFT_EYE = [33, 160, 158, 133, 153, 144]  # image-left eye contour (the person's right eye)
RIGHT_EYE = [362, 385, 387, 263, 373, 380]
SIZE = 192


def _fixture_script():
    """The script that wrote the fixture: its integer-only ``window_crop`` rebuilds the inputs bit for bit."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_face_mesh_fixture", FIXTURE.parent / "make_face_mesh_fixture.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


window_crop = _fixture_script().window_crop


def _tiny_model(seed: int = 0, **overrides) -> FaceMeshModel:
    torch.manual_seed(seed)
    return FaceMeshModel(FaceMeshConfig.tiny(**overrides)).eval()


def face_mesh_source() -> Path:
    """``$HF_FIQA_FACE_MESH_SRC``; unset, the wheel ``scripts/setup.sh`` downloaded, else an installed mediapipe's
    file (:func:`find_face_mesh_source`, whose errors say what is missing)."""
    if not os.environ.get(SOURCE_ENV):
        wheels = sorted(WHEEL_CACHE.glob("mediapipe-0.10.14-*.whl"))
        if wheels:
            return wheels[0]
    return find_face_mesh_source()


@pytest.fixture(scope="module")
def tflite_source() -> Path:
    try:
        return face_mesh_source()
    except (CheckpointError, FileNotFoundError) as exc:
        pytest.skip(f"face_landmark.tflite not available ({exc}); set ${SOURCE_ENV} to the mediapipe==0.10.14 wheel "
                    "or run scripts/setup.sh, which downloads it into .whl/mediapipe")


@pytest.fixture(scope="module")
def tflite_package():
    return pytest.importorskip("tflite", reason="the 'tflite' package (hf-fiqa[convert]) is needed to read .tflite files")


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> tuple[Path, FaceMeshModel]:
    """The released model: ``$HF_FIQA_FACE_MESH_MODEL`` or converted once per module from the wheel/tflite."""
    folder = os.environ.get(MODEL_ENV)
    if folder:
        if not (Path(folder) / "config.json").is_file():
            pytest.skip(f"${MODEL_ENV}={folder} is not a converted folder")
        return Path(folder), FaceMeshModel.from_pretrained(folder).eval()
    pytest.importorskip("tflite", reason="the 'tflite' package (hf-fiqa[convert]) is needed to convert the model")
    try:
        source = face_mesh_source()
    except (CheckpointError, FileNotFoundError) as exc:
        pytest.skip(f"no converted face mesh: set ${MODEL_ENV} to a converted folder or ${SOURCE_ENV} to the "
                    f"mediapipe==0.10.14 wheel ({exc})")
    folder = tmp_path_factory.mktemp("face-mesh")
    return folder, convert_face_mesh_checkpoint(source, folder)


@pytest.fixture(scope="module")
def reference(shared):
    """The fixture's numbers and the photos it names (from the shared data)."""
    ref = dict(np.load(FIXTURE, allow_pickle=False))
    photos = {}
    for rel in ref["paths"]:
        path = shared / "data" / str(rel)
        if not path.is_file():
            pytest.skip(f"shared photo {path} not found")
        with Image.open(path) as image:
            photos[str(rel)] = np.asarray(image.convert("RGB"))
    ref["photos"] = [photos[str(rel)] for rel in ref["paths"]]
    return ref


# --------------------------------------------------------------------------------------------
# Config and model (offline)
# --------------------------------------------------------------------------------------------


def test_config_defaults_are_the_released_network():
    config = FaceMeshConfig()
    assert (config.image_size, config.num_landmarks, config.head_width) == (192, 468, 32)
    assert config.stage_widths == [16, 32, 64, 128, 128] and config.stage_blocks == [2, 3, 3, 3, 3]
    assert config.landmark_head_blocks == [3, 1] and config.presence_head_blocks == [1, 1]
    assert config.head_map_size == 3 and config.roi_scale == 1.5 and config.presence_threshold == 0.5
    model = FaceMeshModel(config)
    assert 0.55e6 < sum(p.numel() for p in model.parameters()) < 0.65e6


@pytest.mark.parametrize(
    "kwargs",
    [dict(image_size=100), dict(stage_widths=(16, 8)), dict(stage_blocks=(2, 0, 3, 3, 3)), dict(stage_blocks=(1, 2)),
     dict(landmark_head_blocks=(0, 1)), dict(roi_scale=0), dict(presence_threshold=2.0)],
)
def test_config_rejects_inconsistent_values(kwargs):
    with pytest.raises(ValueError):
        FaceMeshConfig(**kwargs)


def test_tiny_model_shapes_split_and_input_checks():
    model = _tiny_model()
    x = torch.rand(3, 3, 32, 32)
    with torch.inference_mode():
        out = model(x)
        features = model.forward_features(x)
        split = model.forward_head(features)
        channels_last = model(x.contiguous(memory_format=torch.channels_last))
    assert out.landmarks.shape == (3, 10, 3) and out.presence_logits.shape == (3,)
    assert features.shape == (3, 8, 8, 8)  # 32 / 2**len(stage_widths)
    torch.testing.assert_close(out.presence_scores, torch.sigmoid(out.presence_logits))
    torch.testing.assert_close(split.landmarks, out.landmarks)
    torch.testing.assert_close(channels_last.landmarks, out.landmarks, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="pixel_values must be"):
        model(torch.rand(1, 3, 30, 30))


def test_max_pool_2x2_is_max_pool2d():
    x = torch.randn(2, 5, 12, 8)
    torch.testing.assert_close(max_pool_2x2(x), F.max_pool2d(x, 2, 2), rtol=0, atol=0)


# --------------------------------------------------------------------------------------------
# Processor and crop geometry (offline)
# --------------------------------------------------------------------------------------------


def test_processor_scales_to_unit_range_exactly():
    crop = np.random.default_rng(0).integers(0, 256, (192, 192, 3), dtype=np.uint8)
    pixels = FaceMeshImageProcessor()(crop)["pixel_values"]
    assert pixels.shape == (1, 3, 192, 192) and pixels.dtype == torch.float32
    np.testing.assert_array_equal(pixels[0].numpy(), crop.transpose(2, 0, 1).astype(np.float32) * np.float32(1 / 255))
    # other sizes are stretched; a uniform crop stays uniform
    assert FaceMeshImageProcessor()(np.full((90, 120, 3), 7, np.uint8))["pixel_values"].unique().tolist() == [
        pytest.approx(7 / 255)]


def test_rois_follow_mediapipe_rules():
    boxes = np.array([[10.0, 20.0, 50.0, 80.0]])
    roi = face_mesh_rois(boxes)
    np.testing.assert_allclose(roi, [[30.0, 50.0, 90.0, 0.0]])  # centre, 1.5 x the longer side, no rotation
    eyes = np.array([[[20.0, 40.0], [40.0, 60.0]]])  # image-right eye 45 degrees lower
    np.testing.assert_allclose(face_mesh_rois(boxes, eyes)[0, 3], np.pi / 4)
    # landmark rule: bounding box of the points, rotation from point 33 to point 263
    points = np.zeros((1, 468, 3))
    points[0, :, 0], points[0, :, 1] = np.linspace(0, 100, 468), np.linspace(0, 40, 468)
    points[0, 33, :2], points[0, 263, :2] = (10, 10), (60, 10)
    np.testing.assert_allclose(rois_from_landmarks(points)[0], [50.0, 20.0, 150.0, 0.0])
    with pytest.raises(ValueError):
        face_mesh_rois([[0, 0, 0, 10]])


def test_crop_and_projection_are_inverse():
    """A dot cut out of a photo with a rotated, scaled ROI projects back onto itself."""
    photo = np.zeros((300, 400, 3), np.uint8)
    dot = np.array([231.0, 118.0])
    photo[118, 231] = 255
    roi = np.array([[200.0, 140.0, 150.0, np.deg2rad(25.0)]])
    size = 192
    crop = crop_rois(photo, roi, size)[0].astype(np.float64)[:, :, 0]
    v, u = np.nonzero(crop)
    centre = np.array([(u * crop[v, u]).sum(), (v * crop[v, u]).sum()]) / crop[v, u].sum()
    back = project_landmarks(np.array([[[centre[0], centre[1], 4.0]]]), roi, size)[0, 0]
    np.testing.assert_allclose(back[:2], dot, atol=0.25)
    assert back[2] == pytest.approx(4.0 * 150.0 / size)
    # the crop centre is the ROI centre; crop (0, 0) is the ROI's rotated corner
    matrix = roi_to_photo(roi, size)[0]
    np.testing.assert_allclose(matrix[:, :2] @ [size / 2, size / 2] + matrix[:, 2], [200.0, 140.0])
    c, s = np.cos(np.deg2rad(25.0)), np.sin(np.deg2rad(25.0))
    np.testing.assert_allclose(matrix[:, 2], [200.0 - 75 * c + 75 * s, 140.0 - 75 * s - 75 * c])


def test_crop_turns_the_eye_line_horizontal():
    """MediaPipe rotates the crop so that the line from the image-left to the image-right eye is horizontal."""
    photo = np.zeros((200, 200, 3), np.uint8)
    eyes = np.array([[80.0, 90.0], [120.0, 90.0 + 40.0 * np.tan(np.deg2rad(35.0))]])
    for x, y in eyes.round().astype(int):
        photo[y - 1:y + 2, x - 1:x + 2] = 255
    eyes = eyes.round()
    rois = face_mesh_rois([[60.0, 60.0, 140.0, 160.0]], eyes[None])
    crop = crop_rois(photo, rois, 96)[0, :, :, 0].astype(np.float64)
    v, u = np.nonzero(crop > 0)
    weights = crop[v, u]
    left = u < 48
    centres = [np.array([(u[m] * weights[m]).sum(), (v[m] * weights[m]).sum()]) / weights[m].sum() for m in (left, ~left)]
    assert abs(centres[0][1] - centres[1][1]) < 0.3 and centres[1][0] - centres[0][0] > 20
    back = project_landmarks(np.array([[[*centres[0], 0.0], [*centres[1], 0.0]]]), rois, 96)[0, :, :2]
    np.testing.assert_allclose(back, eyes, atol=0.3)


def test_crop_and_projection_follow_opencv_and_mediapipes_formulas():
    """The crop equals MediaPipe's ``cv::warpPerspective`` of the rotated ROI's corners (OpenCV rounds its
    bilinear weights to 1/32 pixel, hence the small tolerance), and the projection is
    ``LandmarkProjectionCalculator``'s formula in normalised coordinates."""
    cv2 = pytest.importorskip("cv2")
    yy, xx = np.mgrid[0:240, 0:320].astype(np.float64)
    photo = np.stack([127 + 100 * np.sin(xx / 9 + yy / 13 + phase) for phase in (0.0, 1.0, 2.0)], axis=-1)
    photo = photo.round().astype(np.uint8)
    roi = np.array([170.3, 101.7, 131.0, np.deg2rad(-23.0)])
    size = 64
    rotated = ((roi[0], roi[1]), (roi[2], roi[2]), float(np.rad2deg(roi[3])))
    corners = np.array([[0, size], [0, 0], [size, 0], [size, size]], np.float32)
    matrix = cv2.getPerspectiveTransform(cv2.boxPoints(rotated).astype(np.float32), corners)
    expected = cv2.warpPerspective(photo, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    difference = np.abs(crop_rois(photo, roi[None], size).astype(int) - expected.astype(int))
    assert difference.mean() < 0.3 and difference.max() <= 3, (difference.mean(), difference.max())

    landmarks = np.random.default_rng(6).uniform(0, size, (1, 20, 3))
    height, width = photo.shape[:2]
    x, y = landmarks[0, :, 0] / size - 0.5, landmarks[0, :, 1] / size - 0.5  # normalised, centred
    c, s = np.cos(roi[3]), np.sin(roi[3])
    norm_width, norm_height = roi[2] / width, roi[2] / height
    mp_x = (c * x - s * y) * norm_width + roi[0] / width
    mp_y = (s * x + c * y) * norm_height + roi[1] / height
    mp_z = landmarks[0, :, 2] / size * norm_width
    projected = project_landmarks(landmarks, roi[None], size)[0]
    np.testing.assert_allclose(projected[:, 0], mp_x * width, atol=1e-3)
    np.testing.assert_allclose(projected[:, 1], mp_y * height, atol=1e-3)
    np.testing.assert_allclose(projected[:, 2], mp_z * width, atol=1e-3)


def test_crop_replicates_the_border():
    photo = np.zeros((20, 20, 3), np.uint8)
    photo[:, -1] = 200  # right column
    crop = crop_rois(photo, [[19.0, 10.0, 20.0, 0.0]], 16)[0]
    assert (crop[:, -4:] == 200).all() and (crop[:, :4] == 0).all()


def test_runner_is_equivariant_to_rotating_the_photo():
    """Rotating the photo by 90 degrees (and its boxes and eye points with it) cuts the same crops, so the
    landmarks come back rotated the same way: the runner's rotation and projection agree."""
    photo = np.random.default_rng(4).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    boxes = np.array([[30.0, 20.0, 90.0, 95.0], [70.0, 40.0, 140.0, 100.0]])
    eyes = np.array([[[45.0, 50.0], [75.0, 45.0]], [[85.0, 60.0], [120.0, 70.0]]])
    landmarker = FaceMeshLandmarker(_tiny_model(), batch_size=1)
    result = landmarker(photo, boxes, eyes)
    assert result.landmarks.shape == (2, 10, 3) and result.presence.shape == (2,)

    width = photo.shape[1]
    turned = np.rot90(photo)  # counter-clockwise: (x, y) -> (y, width - 1 - x)

    def turn(points):
        return np.stack([points[..., 1], width - 1 - points[..., 0]], axis=-1)

    corners = turn(boxes.reshape(2, 2, 2))
    turned_boxes = np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1)
    again = landmarker(turned, turned_boxes, turn(eyes))
    np.testing.assert_allclose(again.landmarks[..., :2], turn(result.landmarks[..., :2]), atol=0.05)
    np.testing.assert_allclose(again.landmarks[..., 2], result.landmarks[..., 2], atol=0.05)
    np.testing.assert_allclose(again.presence, result.presence, atol=1e-3)
    empty = landmarker(photo, np.zeros((0, 4)))
    assert empty.landmarks.shape == (0, 10, 3) and len(empty) == 0


# --------------------------------------------------------------------------------------------
# Save / load, remote code (offline)
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
    from transformers import AutoConfig, AutoImageProcessor, AutoModel

    folder, crops_path, out_path = sys.argv[1:4]
    config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
    model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    processor = AutoImageProcessor.from_pretrained(folder, trust_remote_code=True)
    with torch.inference_mode():
        out = model(**processor(list(np.load(crops_path)), return_tensors="pt"))
    np.save(out_path, out.landmarks.numpy())
    json.dump({"config": type(config).__name__, "model": type(model).__name__, "processor": type(processor).__name__,
               "hf_fiqa_loaded": any(m.startswith("hf_fiqa") for m in sys.modules)}, sys.stdout)
    """
)


def test_tiny_model_round_trips_through_save_and_remote_code(tmp_path):
    model = _tiny_model(1)
    processor = FaceMeshImageProcessor(size=32)
    folder = tmp_path / "tiny"
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "face_mesh" and set(config["auto_map"]) >= {"AutoConfig", "AutoModel"}
    assert "AutoImageProcessor" in json.loads((folder / "preprocessor_config.json").read_text())["auto_map"]
    for name in ("configuration_face_mesh.py", "modeling_face_mesh.py", "image_processing_face_mesh.py"):
        assert (folder / name).is_file(), name

    crops = np.random.default_rng(5).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    with torch.inference_mode():
        local = model(**processor(list(crops))).landmarks.numpy()
        reloaded = FaceMeshModel.from_pretrained(folder).eval()(**processor(list(crops))).landmarks.numpy()
    np.testing.assert_array_equal(reloaded, local)

    crops_path, out_path = tmp_path / "crops.npy", tmp_path / "out.npy"
    np.save(crops_path, crops)
    env = dict(os.environ, HF_MODULES_CACHE=str(tmp_path / "modules"), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    result = subprocess.run([sys.executable, "-c", _REMOTE_SCRIPT, str(folder), str(crops_path), str(out_path)],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    info = json.loads(result.stdout.strip().splitlines()[-1])
    assert info == {"config": "FaceMeshConfig", "model": "FaceMeshModel", "processor": "FaceMeshImageProcessor",
                    "hf_fiqa_loaded": False}
    np.testing.assert_allclose(np.load(out_path), local, rtol=0, atol=1e-6)


# --------------------------------------------------------------------------------------------
# Reader errors (offline) and conversion of the released file
# --------------------------------------------------------------------------------------------


def test_reader_rejects_what_is_not_the_face_mesh(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_tflite_bytes(tmp_path / "missing.tflite")
    archive = tmp_path / "other-0.1-py3-none-any.whl"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("other/__init__.py", "")
    with pytest.raises(CheckpointError, match="without mediapipe/modules/face_landmark"):
        read_tflite_bytes(archive)
    garbage = tmp_path / "garbage.tflite"
    garbage.write_bytes(b"not a flatbuffer" * 4)
    with pytest.raises(CheckpointError, match="not a TensorFlow Lite model"):
        read_face_mesh_tflite(garbage)


def test_conversion_from_wheel_and_from_tflite_agree(tflite_source, tflite_package, tmp_path):
    data, _ = read_tflite_bytes(tflite_source)
    tflite_file, wheel = tmp_path / "face_landmark.tflite", tmp_path / "mediapipe-0.10.14-py3-none-any.whl"
    tflite_file.write_bytes(data)
    with zipfile.ZipFile(wheel, "w") as handle:
        handle.writestr(WHEEL_MEMBER, data)
    from_file, from_wheel = read_face_mesh_tflite(tflite_file), read_face_mesh_tflite(wheel)
    assert from_file.config.to_dict() == from_wheel.config.to_dict()
    assert from_file.config.stage_widths == [16, 32, 64, 128, 128] and from_file.config.num_landmarks == 468
    assert from_file.state_dict.keys() == from_wheel.state_dict.keys()
    for key, value in from_file.state_dict.items():
        assert torch.equal(value, from_wheel.state_dict[key]), key

    model = convert_face_mesh_checkpoint(wheel, tmp_path / "out")
    for name in ("config.json", "model.safetensors", "preprocessor_config.json", "modeling_face_mesh.py"):
        assert (tmp_path / "out" / name).is_file(), name
    assert set(model.state_dict()) == set(from_file.state_dict)

    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError):
        read_face_mesh_tflite(truncated)


def test_convert_command_packages_a_landmark_model_as_a_plain_folder(tmp_path, monkeypatch, capsys):
    """``hf-fiqa convert face-mesh`` adds nothing to what the converter saved: a landmark model gets no
    face-image-quality pipeline and no quality model card (offline: a tiny model stands in for the converter)."""
    import argparse

    from hf_fiqa.commands import convert as commands
    from hf_fiqa.models.conversion import CONVERTERS, Converter

    converter = CONVERTERS["face-mesh"]
    assert converter.kind == "landmarks" and converter.src_optional

    def fake_convert(src, dst):
        model = _tiny_model()
        model.save_pretrained(dst)
        FaceMeshImageProcessor(size=model.config.image_size).save_pretrained(dst)
        return model

    monkeypatch.setattr(Converter, "load", lambda self: fake_convert)
    parser = argparse.ArgumentParser()
    commands.add_converter(parser.add_subparsers(dest="model"), "face-mesh", converter)
    dst = tmp_path / "mesh"
    args = parser.parse_args(["face-mesh", str(dst)])
    assert args.func(args) == 0, capsys.readouterr().err
    assert "MediaPipe face mesh, 10 landmarks" in capsys.readouterr().out
    assert sorted(p.name for p in dst.iterdir()) == [
        "config.json", "configuration_face_mesh.py", "image_processing_face_mesh.py", "model.safetensors",
        "modeling_face_mesh.py", "preprocessor_config.json"]
    assert "custom_pipelines" not in json.loads((dst / "config.json").read_text())


_CLI_LOAD_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import torch
    import hf_fiqa
    from transformers import AutoImageProcessor, AutoModel

    hf_fiqa.register()
    folder = sys.argv[1]
    model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    processor = AutoImageProcessor.from_pretrained(folder, trust_remote_code=True)
    crop = np.random.default_rng(0).integers(0, 256, (192, 192, 3), dtype=np.uint8)
    with torch.inference_mode():
        out = model(**processor([crop], return_tensors="pt"))
    json.dump({"model": type(model).__name__, "processor": type(processor).__name__,
               "landmarks": list(out.landmarks.shape), "presence": list(out.presence_scores.shape)}, sys.stdout)
    """
)


@pytest.mark.slow
def test_cli_converts_the_wheel_into_a_plain_landmark_model_folder(tflite_source, tflite_package, tmp_path, capsys):
    """``hf-fiqa convert face-mesh WHEEL DST`` writes the model, its config and processor with their code, and
    nothing of a quality model (no face-image-quality pipeline, no MOS card); after ``hf_fiqa.register()``
    ``AutoModel.from_pretrained(DST, trust_remote_code=True)`` loads it and runs."""
    from hf_fiqa.cli import main as cli_main

    dst = tmp_path / "face-mesh"
    assert cli_main(["convert", "face-mesh", str(tflite_source), str(dst)]) == 0, capsys.readouterr().err[-3000:]
    out = capsys.readouterr().out
    assert out.startswith("converted ") and "468 landmarks" in out, out
    files = sorted(p.name for p in dst.iterdir())
    assert files == ["config.json", "configuration_face_mesh.py", "image_processing_face_mesh.py",
                     "model.safetensors", "modeling_face_mesh.py", "preprocessor_config.json"], files
    config = json.loads((dst / "config.json").read_text())
    assert config["model_type"] == "face_mesh" and "custom_pipelines" not in config

    env = dict(os.environ, HF_MODULES_CACHE=str(tmp_path / "modules"), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    loaded = subprocess.run([sys.executable, "-c", _CLI_LOAD_SCRIPT, str(dst)], capture_output=True, text=True,
                            env=env, cwd=tmp_path, timeout=300)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    info = json.loads(loaded.stdout.strip().splitlines()[-1])
    assert info["model"] == "FaceMeshModel" and info["processor"] == "FaceMeshImageProcessor", info
    assert info["landmarks"] == [1, 468, 3] and info["presence"] == [1], info


# --------------------------------------------------------------------------------------------
# Parity with MediaPipe's runtime on real faces, and landmarks in photo coordinates
# --------------------------------------------------------------------------------------------


def _reference_crops(reference) -> np.ndarray:
    """The fixture's inputs, rebuilt from the photos (integer arithmetic: bit-exact anywhere)."""
    crops = np.stack([window_crop(photo, *window) for photo, window in zip(reference["photos"], reference["windows"])])
    sums = crops.reshape(len(crops), -1).astype(np.int64).sum(axis=1)
    changed = np.nonzero(sums != reference["crop_checksums"])[0].tolist()
    assert not changed, f"crops {changed} differ from those the fixture was made on (were the shared photos changed?)"
    return crops


@pytest.mark.parametrize("channels_last", [False, True])
def test_landmarks_match_litert_on_real_faces(converted, reference, channels_last):
    _, model = converted
    source = getattr(model.config, "tflite_sha256", None)
    assert source in (None, str(reference["tflite_sha256"])), "the model was converted from another .tflite file"
    crops = _reference_crops(reference)
    pixels = FaceMeshImageProcessor()(list(crops))["pixel_values"]
    if channels_last:
        model = FaceMeshModel.from_pretrained(converted[0]).eval().to(memory_format=torch.channels_last)
        pixels = pixels.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        out = model(pixels)
    assert len(crops) >= 8
    landmark_error = np.abs(out.landmarks.numpy() - reference["landmarks"]).max()
    logit_error = np.abs(out.presence_logits.numpy() - reference["presence_logits"]).max()
    score = 1 / (1 + np.exp(-reference["presence_logits"].astype(np.float64)))
    assert landmark_error <= 1e-3, f"max |landmark - litert| = {landmark_error:.2e} crop pixels"
    assert logit_error <= 1e-3, f"max |presence logit - litert| = {logit_error:.2e}"
    assert np.abs(out.presence_scores.numpy() - score).max() <= 1e-3


def test_runner_puts_eyes_nose_and_mouth_on_yunets_points(converted, reference):
    """On the LFW photos, the mesh's eye centres, nose tip and mouth corners, mapped back to the photo, lie
    near YuNet's five points: from MediaPipe's ROI of YuNet's box and eyes, and from that ROI turned by
    +-30 degrees (the face then appears tilted in the crop)."""
    folder, _ = converted
    landmarker = FaceMeshLandmarker.from_pretrained(folder)
    paths = [str(p) for p in reference["paths"]]
    lfw = sorted({p: k for k, p in enumerate(paths) if p.startswith("lfw/")}.values())
    assert len(lfw) >= 8
    tilts = (0.0, 30.0, -30.0)
    for k in lfw:
        photo, points = reference["photos"][k], reference["points"][k]
        rois = face_mesh_rois(reference["boxes"][k:k + 1], reference["points"][k:k + 1])
        result = landmarker(photo, rois=np.repeat(rois, len(tilts), axis=0) + np.outer(np.deg2rad(tilts), [0, 0, 0, 1]))
        assert result.present.all(), (paths[k], result.presence)
        ied = np.linalg.norm(points[1] - points[0])
        for mesh, tilt in zip(result.landmarks[:, :, :2], tilts):
            found = np.stack([mesh[LEFT_EYE].mean(0), mesh[RIGHT_EYE].mean(0), mesh[1], mesh[61], mesh[291]])
            error = np.linalg.norm(found - points, axis=1) / ied
            # measured: upright <= 0.13 (eyes) and 0.23 (all); tilted <= 0.35; a crop turned the wrong way: > 1.5
            limits = (0.2, 0.3) if tilt == 0 else (0.45, 0.45)
            assert error[:2].max() < limits[0] and error.max() < limits[1], (paths[k], tilt, error.round(3))
    k = lfw[0]  # boxes and eye points, or detector records, give the same ROI and landmarks
    direct = landmarker(reference["photos"][k], reference["boxes"][k:k + 1], reference["points"][k:k + 1])
    np.testing.assert_allclose(direct.rois, face_mesh_rois(reference["boxes"][k:k + 1], reference["points"][k:k + 1]))
    from hf_fiqa.faces import DetectedFace

    record = DetectedFace(box=reference["boxes"][k], landmarks=reference["points"][k], score=0.9)
    np.testing.assert_array_equal(landmarker.run_faces(reference["photos"][k], [record]).landmarks, direct.landmarks)
