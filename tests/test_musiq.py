"""MUSIQ: config checks, multi-scale patch geometry, model outputs and losses, padding invariance, Hub remote code."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hf_fiqa.hub import package_quality_model
from hf_fiqa.io import ImageReadError
from hf_fiqa.models.musiq import MUSIQConfig, MUSIQForImageQualityAssessment, MUSIQImageProcessor
from hf_fiqa.models.musiq.image_processing_musiq import aspect_resize_shape, hash_positions, tf_gaussian_resize
from hf_fiqa.models.musiq.modeling_musiq import StdConv2d, _same_padding, emd_loss


def _photo(width: int = 90, height: int = 70, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def _processor(**overrides) -> MUSIQImageProcessor:
    """Processor matching ``MUSIQConfig.tiny()``: 16-pixel patches, 4x4 hash grid, scales 32 and 48 + full."""
    values = dict(patch_size=16, spatial_grid_size=4, scales=(32, 48))
    values.update(overrides)
    return MUSIQImageProcessor(**values)


def _model_inputs(batch) -> dict:
    return {k: v for k, v in batch.items() if k != "crop_to_image"}


@pytest.fixture(scope="module")
def tiny_model():
    """Tiny model with a random (not zero, as at init) head so that scores differ between inputs."""
    torch.manual_seed(0)
    model = MUSIQForImageQualityAssessment(MUSIQConfig.tiny()).eval()
    with torch.no_grad():
        torch.nn.init.normal_(model.head.weight, std=1.0)
    return model


def _scores(model, batch) -> torch.Tensor:
    with torch.no_grad():
        return model(**_model_inputs(batch)).score


# -- config -------------------------------------------------------------------------------------------------
def test_default_config_is_the_paper_model():
    config = MUSIQConfig()
    assert (config.patch_size, config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (32, 384, 14, 6)
    assert (config.intermediate_size, config.spatial_grid_size, config.num_scales) == (1152, 10, 3)
    assert (config.stem_width, config.stem_blocks, config.stem_channels, config.stem_stride) == (64, [1], 256, 4)
    assert config.stem_features == 8 * 8 * 256
    assert (config.head, config.loss_type, config.layer_norm_eps) == ("score", "mse", 1e-6)
    model = MUSIQForImageQualityAssessment(config)
    # The paper reports 27M parameters.
    assert 26e6 < sum(p.numel() for p in model.parameters()) < 28e6


def test_distribution_head_defaults_to_emd():
    config = MUSIQConfig.tiny(head="distribution")
    assert (config.loss_type, config.num_outputs) == ("emd", 10)


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"patch_size": 30}, "patch_size"),
        ({"stem_blocks": (1, 0)}, "stem_blocks"),
        ({"stem_num_groups": 12}, "stem_num_groups"),
        ({"num_attention_heads": 5}, "num_attention_heads"),
        ({"head": "histogram"}, "head"),
        ({"loss_type": "emd"}, "loss_type"),
        ({"head": "distribution", "loss_type": "mse"}, "loss_type"),
        ({"head": "distribution", "num_bins": 1}, "num_bins"),
        ({"hidden_dropout": 1.5}, "hidden_dropout"),
        ({"spatial_grid_size": 0}, "spatial_grid_size"),
    ],
)
def test_inconsistent_config_names_the_field(overrides, field):
    with pytest.raises(ValueError, match=rf"MUSIQConfig\.{field}"):
        MUSIQConfig.tiny(**overrides)


def test_config_roundtrips_through_json(tmp_path):
    config = MUSIQConfig.tiny(head="distribution", num_bins=5, stem_blocks=(1, 1))
    config.save_pretrained(tmp_path)
    assert MUSIQConfig.from_pretrained(tmp_path).to_dict() == config.to_dict()


# -- resize, hash, geometry -----------------------------------------------------------------------------------
def test_gaussian_resize_matches_tensorflow():
    """TensorFlow's own expected output for tf.image.resize(3x2 -> 6x4, GAUSSIAN) (image_ops_test.py)."""
    image = np.array([64, 32, 32, 64, 50, 100], dtype=np.float32).reshape(3, 2, 1)
    expected = np.array([
        61.1087, 54.6926, 41.3074, 34.8913, 54.6926, 51.4168, 44.5832, 41.3074,
        41.696, 45.2456, 52.6508, 56.2004, 39.4273, 47.0526, 62.9602, 70.5855,
        47.3008, 57.3042, 78.173, 88.1764, 51.4771, 62.3638, 85.0752, 95.9619,
    ]).reshape(6, 4)
    np.testing.assert_allclose(tf_gaussian_resize(image, 6, 4)[..., 0], expected, atol=1e-4)


@pytest.mark.parametrize("antialias", [False, True])
def test_gaussian_downscale_keeps_constants_and_is_smooth(antialias):
    flat = np.full((97, 61, 3), 0.25, dtype=np.float32)
    np.testing.assert_allclose(tf_gaussian_resize(flat, 20, 13, antialias), 0.25, atol=1e-6)
    # Antialiasing averages a fine checkerboard to grey; without it, TF's narrow kernel aliases.
    checker = (np.indices((96, 96)).sum(0) % 2).astype(np.float32)[..., None]
    spread = np.ptp(tf_gaussian_resize(checker, 32, 32, antialias))
    assert spread < 0.05 if antialias else spread > 0.1


@pytest.mark.parametrize(
    "height, width, side, expected",
    [(768, 1024, 224, (168, 224)), (1024, 768, 384, (384, 288)), (3, 8, 4, (2, 4)), (5, 8, 4, (2, 4)),
     (7, 8, 4, (4, 4)), (1, 5000, 224, (1, 224))],
)
def test_aspect_resize_rounds_half_to_even(height, width, side, expected):
    # 3 * 0.5 = 1.5 -> 2 and 5 * 0.5 = 2.5 -> 2 (tf.round is round-half-to-even), 7 * 0.5 = 3.5 -> 4.
    assert aspect_resize_shape(height, width, side) == expected


def test_hash_positions_known_grids():
    # 5 x 3 patch grid on a 10 x 10 table: rows -> 0, 2, 4, 6, 8; columns -> 0, 3, 6.
    expected = [r * 10 + c for r in (0, 2, 4, 6, 8) for c in (0, 3, 6)]
    assert hash_positions(5, 3, 10).tolist() == expected
    # More patches than cells: 15 rows share 10 cells, floor(i * 10 / 15).
    rows = hash_positions(15, 1, 10) // 10
    assert rows.tolist() == [0, 0, 1, 2, 2, 3, 4, 4, 5, 6, 6, 7, 8, 8, 9]


def test_hash_positions_equal_exact_formula_for_usual_grids():
    for count in range(1, 205):
        rows = hash_positions(count, 1, 10) // 10
        assert rows.tolist() == [i * 10 // count for i in range(count)], count


def test_patches_per_scale_and_scale_ids():
    processor = _processor()
    batch = processor(_photo(90, 70))  # (h, w) = (70, 90)
    # Scale 32 -> 25x32 -> 2x2 patches; scale 48 -> 37x48 -> 3x3; full 70x90 -> 5x6.
    counts = [4, 9, 30]
    assert batch["pixel_values"].shape == (1, sum(counts), 3, 16, 16)
    assert batch["scale_ids"][0].tolist() == [0] * 4 + [1] * 9 + [2] * 30
    assert batch["attention_mask"].sum() == sum(counts)
    assert batch["crop_to_image"].tolist() == [0]
    full = batch["spatial_positions"][0, 13:].view(5, 6)
    assert full.tolist() == [[r * 4 + c for c in (0, 0, 1, 2, 2, 3)] for r in (0, 0, 1, 2, 3)]
    assert processor.scale_shapes(70, 90) == [(25, 32), (37, 48), (70, 90)]


def test_same_padding_puts_the_extra_pixel_after():
    image = _photo(21, 21)
    processor = _processor(scales=(), image_mean=(0, 0, 0), image_std=(1, 1, 1))
    pixels = processor(image)["pixel_values"][0]  # 2x2 patches; 11 padding pixels per axis: 5 before, 6 after
    assert pixels.shape == (4, 3, 16, 16)
    first = pixels[0]
    assert torch.all(first[:, :5, :] == 0) and torch.all(first[:, :, :5] == 0)
    np.testing.assert_allclose(first[:, 5:, 5:].numpy(), (np.asarray(image)[:11, :11] / 255.0).transpose(2, 0, 1),
                               atol=1e-6)
    last = pixels[3]
    assert torch.all(last[:, 10:, :] == 0) and torch.all(last[:, :, 10:] == 0)


def test_padding_to_the_longest_with_mask():
    batch = _processor()([_photo(90, 70), _photo(40, 30, seed=1)])
    lengths = batch["attention_mask"].sum(1).tolist()
    assert lengths[0] == batch["pixel_values"].shape[1] > lengths[1]
    short = lengths[1]
    assert torch.all(batch["attention_mask"][1, short:] == 0) and torch.all(batch["pixel_values"][1, short:] == 0)
    assert batch["crop_to_image"].tolist() == [0, 1]


def test_max_seq_len_pads_and_truncates():
    natural = _processor()(_photo())
    n = int(natural["attention_mask"].sum())
    padded = _processor(max_seq_len=n + 20)(_photo())
    assert padded["pixel_values"].shape[1] == n + 20 and int(padded["attention_mask"].sum()) == n
    assert torch.equal(padded["pixel_values"][:, :n], natural["pixel_values"])
    cut = _processor(max_seq_len=10)(_photo())
    assert cut["pixel_values"].shape[1] == 10 and cut["attention_mask"].sum() == 10
    assert torch.equal(cut["spatial_positions"], natural["spatial_positions"][:, :10])
    assert torch.equal(cut["scale_ids"], natural["scale_ids"][:, :10])


def test_full_resolution_limits():
    capped = _processor(max_full_side=45)
    assert capped.scale_shapes(70, 90)[-1] == (35, 45)
    assert capped(_photo())["scale_ids"][0].tolist().count(2) == 3 * 3
    cut = _processor(max_full_patches=7)(_photo())
    assert cut["scale_ids"][0].tolist().count(2) == 7
    only_scales = _processor(include_full_resolution=False)
    assert only_scales.num_scales == 2 and only_scales(_photo())["scale_ids"].max() == 1


def test_processing_is_deterministic():
    a, b = _processor()(_photo()), _processor()(_photo())
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize(
    "kwargs, field",
    [({"patch_size": 0}, "patch_size"), ({"scales": (32, 32)}, "scales"),
     ({"scales": (), "include_full_resolution": False}, "scales"), ({"max_seq_len": 0}, "max_seq_len"),
     ({"image_std": (0.5, 0, 0.5)}, "image_std")],
)
def test_bad_processor_settings_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=rf"MUSIQImageProcessor\.{field}"):
        _processor(**kwargs)


def test_processor_config_roundtrip(tmp_path):
    processor = _processor(scales=(48, 32), max_full_side=300, max_seq_len=99, antialias=True)
    processor.save_pretrained(tmp_path)
    loaded = MUSIQImageProcessor.from_pretrained(tmp_path)
    assert (loaded.scales, loaded.max_full_side, loaded.max_seq_len, loaded.antialias) == ([32, 48], 300, 99, True)


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "I;16", "1"])
def test_odd_modes_become_rgb(mode, tmp_path):
    base = _photo(40, 30)
    img = Image.fromarray(np.asarray(base.convert("L"), dtype=np.uint16) * 257) if mode == "I;16" else base.convert(mode)
    path = tmp_path / ("odd.tiff" if mode in ("CMYK", "I;16") else "odd.png")
    img.save(path)
    batch = _processor()([path, img])
    assert batch["pixel_values"].shape[0] == 2 and torch.isfinite(batch["pixel_values"]).all()
    assert torch.equal(batch["attention_mask"][0], batch["attention_mask"][1])


@pytest.mark.parametrize("content, reason", [(b"", "empty"), (b"not an image\n", "not a recognised"), (None, "truncated")])
def test_unreadable_files_name_the_input(tmp_path, content, reason):
    path = tmp_path / "bad.jpg"
    if content is None:
        buffer = io.BytesIO()
        _photo().save(buffer, format="JPEG")
        content = buffer.getvalue()[: len(buffer.getvalue()) // 2]
    path.write_bytes(content)
    with pytest.raises(ImageReadError, match="bad.jpg") as info:
        _processor()([_photo(), path])
    assert reason.split()[0] in str(info.value).lower() or "truncated" in str(info.value).lower()


# -- model ----------------------------------------------------------------------------------------------------
def test_same_padding_matches_tensorflow_rule():
    # TF: output ceil(n / s), total pad max((out - 1) * s + k - n, 0), the odd pixel after.
    assert _same_padding(32, 7, 2) == (2, 3)
    assert _same_padding(16, 3, 2) == (0, 1)
    assert _same_padding(8, 3, 1) == (1, 1)
    assert _same_padding(8, 1, 2) == (0, 0)


def test_standardised_conv_ignores_weight_scale():
    torch.manual_seed(0)
    conv = StdConv2d(3, 8, 3)
    x = torch.randn(2, 3, 9, 9)
    with torch.no_grad():
        before = conv(x)
        conv.weight.mul_(7.0).add_(0.5)
        after = conv(x)
    assert before.shape == (2, 8, 9, 9)
    torch.testing.assert_close(before, after, atol=1e-4, rtol=1e-4)


def test_new_model_starts_from_the_official_init():
    model = MUSIQForImageQualityAssessment(MUSIQConfig.tiny())
    assert torch.all(model.head.weight == 0) and torch.all(model.encoder.cls_token == 0)
    assert all(torch.all(unit.gn3.weight == 0) for stage in model.stem.stages for unit in stage)
    assert 0.01 < float(model.encoder.spatial_embedding.detach().std()) < 0.03


def test_outputs_shapes_loss_and_backward(tiny_model):
    batch = _processor()([_photo(), _photo(50, 60, seed=1), _photo(33, 33, seed=2)])
    model = tiny_model
    out = model(**_model_inputs(batch), labels=torch.rand(3))
    assert out.score.shape == (3,) and out.logits.shape == (3, 1) and out.distribution is None
    torch.testing.assert_close(out.score, out.logits[:, 0])
    assert out.loss.ndim == 0 and out.loss > 0
    model.zero_grad()
    out.loss.backward()
    for param in (model.stem.conv_root.weight, model.embedding.weight, model.encoder.spatial_embedding, model.head.weight):
        assert param.grad is not None and param.grad.abs().sum() > 0
    model.zero_grad()


def test_mse_loss_value(tiny_model):
    batch = _processor()([_photo(), _photo(seed=1)])
    labels = torch.tensor([0.2, 0.9])
    out = tiny_model(**_model_inputs(batch), labels=labels)
    torch.testing.assert_close(out.loss, torch.mean((out.score.detach() - labels) ** 2))


def test_distribution_head_and_emd_loss():
    torch.manual_seed(0)
    model = MUSIQForImageQualityAssessment(MUSIQConfig.tiny(head="distribution")).train()
    with torch.no_grad():
        torch.nn.init.normal_(model.head.weight)
    batch = _processor()([_photo(), _photo(seed=1)])
    votes = torch.tensor([[0, 1, 3, 8, 10, 6, 2, 1, 0, 0], [0, 0, 0, 1, 2, 5, 9, 7, 3, 1]], dtype=torch.float32)
    out = model(**_model_inputs(batch), labels=votes)
    assert out.logits.shape == out.distribution.shape == (2, 10)
    torch.testing.assert_close(out.distribution.sum(-1), torch.ones(2))
    torch.testing.assert_close(out.score, (out.distribution * torch.arange(1, 11)).sum(-1))
    assert torch.all((out.score >= 1) & (out.score <= 10))
    out.loss.backward()
    assert model.head.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"\(B, 10\)"):
        model(**_model_inputs(batch), labels=torch.rand(2))


def test_emd_closed_form():
    first, last = torch.eye(10)[0:1], torch.eye(10)[9:10]
    # CDFs differ by 1 on 9 of 10 bins: sqrt(9 / 10).
    torch.testing.assert_close(emd_loss(first, last), torch.tensor(0.9 ** 0.5))
    torch.testing.assert_close(emd_loss(first, first * 7), torch.tensor(1e-6), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="positive total"):
        emd_loss(first, torch.zeros(1, 10))


def test_padding_does_not_change_the_score(tiny_model):
    image = _photo()
    alone = _processor()(image)
    n = alone["pixel_values"].shape[1]
    padded = _processor(max_seq_len=n + 37)(image)
    reference = _scores(tiny_model, alone)
    torch.testing.assert_close(_scores(tiny_model, padded), reference, atol=1e-5, rtol=0)
    # Garbage in the padded slots (pixels, positions, scales) must not matter either...
    noisy = {k: v.clone() for k, v in padded.items()}
    noisy["pixel_values"][:, n:] = torch.randn_like(noisy["pixel_values"][:, n:]) * 5
    noisy["spatial_positions"][:, n:] = 15
    noisy["scale_ids"][:, n:] = 2
    torch.testing.assert_close(_scores(tiny_model, noisy), reference, atol=1e-5, rtol=0)
    # ...as long as the mask hides it: unmasked, the same garbage changes the score (guards the checks above).
    noisy["attention_mask"][:] = 1
    assert (_scores(tiny_model, noisy) - reference).abs().max() > 1e-3


def test_batching_with_other_images_does_not_change_scores(tiny_model):
    images = [_photo(), _photo(40, 30, seed=1), _photo(120, 64, seed=2)]
    batched = _scores(tiny_model, _processor()(images))
    single = torch.cat([_scores(tiny_model, _processor()(image)) for image in images])
    assert batched.std() > 1e-3, "scores should vary across inputs for this comparison to mean anything"
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=0)


def test_patch_order_does_not_matter(tiny_model):
    """Why packing the patches (instead of the official per-scale padding) keeps the scores: no index positions."""
    batch = _processor()(_photo())
    order = torch.randperm(batch["pixel_values"].shape[1], generator=torch.Generator().manual_seed(0))
    shuffled = {k: (v[:, order] if k != "crop_to_image" else v) for k, v in batch.items()}
    torch.testing.assert_close(_scores(tiny_model, shuffled), _scores(tiny_model, batch), atol=1e-5, rtol=0)
    # The hash positions do matter.
    moved = {k: v.clone() for k, v in batch.items()}
    moved["spatial_positions"] = (moved["spatial_positions"] + 5) % 16
    assert (_scores(tiny_model, moved) - _scores(tiny_model, batch)).abs().max() > 1e-4


def test_bfloat16_close_to_float32(tiny_model):
    batch = _model_inputs(_processor()([_photo(), _photo(seed=1)]))
    with torch.no_grad():
        full = tiny_model(**batch).score
        half = tiny_model.to(torch.bfloat16)(**{**batch, "pixel_values": batch["pixel_values"].bfloat16()}).score
    tiny_model.float()
    assert half.dtype == torch.bfloat16 and torch.isfinite(half).all()
    torch.testing.assert_close(half.float(), full, atol=0.15, rtol=0.05)


def test_bad_inputs_are_clear_errors(tiny_model):
    batch = _model_inputs(_processor()(_photo()))
    with pytest.raises(ValueError, match=r"\(B, L, 3, 16, 16\)"):
        tiny_model(pixel_values=torch.randn(1, 3, 32, 32))
    with pytest.raises(ValueError, match="spatial_positions and scale_ids"):
        tiny_model(pixel_values=batch["pixel_values"])
    with pytest.raises(ValueError, match=r"scale_ids must lie in \[0, 3\)"):
        tiny_model(**{**batch, "scale_ids": batch["scale_ids"] + 1})
    with pytest.raises(ValueError, match="attention_mask must have shape"):
        tiny_model(**{**batch, "attention_mask": batch["attention_mask"][:, :-1]})


# -- Hub packaging ----------------------------------------------------------------------------------------------
# Runs in a fresh interpreter where importing hf_fiqa is impossible, as on a machine that only has transformers:
# everything must come from the saved folder's remote code.
FRESH_PROCESS = r"""
import sys, json
sys.modules["hf_fiqa"] = None  # any `import hf_fiqa...` now raises ImportError
import numpy as np, torch
from transformers import AutoModel, AutoImageProcessor
source, image_path, out = sys.argv[1], sys.argv[2], sys.argv[3]
model = AutoModel.from_pretrained(source, trust_remote_code=True).eval()
processor = AutoImageProcessor.from_pretrained(source, trust_remote_code=True)
batch = processor([image_path], return_tensors="pt")
inputs = {k: v for k, v in batch.items() if k != "crop_to_image"}
with torch.no_grad():
    score = model(**inputs).score
np.save(out, score.numpy())
print(json.dumps({"model": type(model).__module__, "processor": type(processor).__module__}))
"""


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory, tiny_model):
    folder = tmp_path_factory.mktemp("musiq-tiny")
    tiny_model.save_pretrained(folder)
    _processor(max_full_side=64).save_pretrained(folder)
    package_quality_model(folder)  # the export steps' packaging: pipeline code and its helpers beside the weights
    return tiny_model, folder


def test_save_pretrained_writes_safetensors_and_remote_code(saved_model):
    _, folder = saved_model
    names = {p.name for p in folder.iterdir()}
    assert {"model.safetensors", "config.json", "preprocessor_config.json", "configuration_musiq.py",
            "modeling_musiq.py", "image_processing_musiq.py", "fiqa_io.py"} <= names
    assert not any(n.endswith((".bin", ".pth", ".pt")) for n in names)
    assert not (folder / "fiqa_io.py").is_symlink()
    auto_map = json.loads((folder / "config.json").read_text())["auto_map"]
    assert auto_map["AutoModel"] == "modeling_musiq.MUSIQForImageQualityAssessment"
    processor_map = json.loads((folder / "preprocessor_config.json").read_text())["auto_map"]
    assert processor_map["AutoImageProcessor"] == "image_processing_musiq.MUSIQImageProcessor"


def test_remote_code_in_fresh_process_gives_identical_scores(saved_model, tmp_path):
    model, folder = saved_model
    image = tmp_path / "photo.png"
    _photo(90, 70, seed=3).save(image)
    out = tmp_path / "score.npy"
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules")}
    proc = subprocess.run([sys.executable, "-c", FRESH_PROCESS, str(folder), str(image), str(out)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    modules = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "hf_fiqa" not in modules["model"] and "hf_fiqa" not in modules["processor"]
    expected = _scores(model, MUSIQImageProcessor.from_pretrained(folder)([image])).numpy()
    np.testing.assert_array_equal(np.load(out), expected)


def test_auto_classes_in_process(saved_model):
    from transformers import AutoConfig, AutoImageProcessor, AutoModel

    import hf_fiqa

    hf_fiqa.register()  # the families in the Auto classes: no trust_remote_code needed in process
    model, folder = saved_model
    assert isinstance(AutoConfig.from_pretrained(folder), MUSIQConfig)
    loaded = AutoModel.from_pretrained(folder)
    assert isinstance(loaded, MUSIQForImageQualityAssessment)
    assert isinstance(AutoImageProcessor.from_pretrained(folder), MUSIQImageProcessor)
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name


# -- official checkpoint conversion -------------------------------------------------------------------------------
def _official_params(rng: np.random.Generator, stem_blocks=(1,), width=32, patch=16, dim=32, heads=2, mlp=48,
                     layers=2, grid=4, scales=3, classes=1) -> dict[str, np.ndarray]:
    """Random parameters under the official flax names and shapes, written from the JAX code (not from key_map)."""
    p: dict[str, np.ndarray] = {}

    def conv(name, k, cin, cout):
        p[f"{name}/kernel"] = rng.normal(0, 1, (k, k, cin, cout)).astype(np.float32)

    def gn(name, c):
        p[f"{name}/scale"] = rng.normal(1, 0.3, (1, 1, 1, c)).astype(np.float32)
        p[f"{name}/bias"] = rng.normal(0, 0.3, (1, 1, 1, c)).astype(np.float32)

    def dense(name, shape_in, shape_out):
        p[f"{name}/kernel"] = (rng.normal(0, 1, shape_in + shape_out) / np.sqrt(np.prod(shape_in))).astype(np.float32)
        p[f"{name}/bias"] = rng.normal(0, 0.1, shape_out).astype(np.float32)

    def norm(name, c):
        p[f"{name}/scale"] = rng.normal(1, 0.1, (c,)).astype(np.float32)
        p[f"{name}/bias"] = rng.normal(0, 0.1, (c,)).astype(np.float32)

    conv("conv_root", 7, 3, width)
    gn("gn_root", width)
    cin = width
    for i, units in enumerate(stem_blocks, 1):
        w = width * 2 ** (i - 1)
        for j in range(1, units + 1):
            u = f"block{i}/unit{j}"
            conv(f"{u}/conv1", 1, cin, w), gn(f"{u}/gn1", w)
            conv(f"{u}/conv2", 3, w, w), gn(f"{u}/gn2", w)
            conv(f"{u}/conv3", 1, w, 4 * w), gn(f"{u}/gn3", 4 * w)
            if cin != 4 * w or (i > 1 and j == 1):
                conv(f"{u}/conv_proj", 1, cin, 4 * w), gn(f"{u}/gn_proj", 4 * w)
            cin = 4 * w
    side = patch // (4 * 2 ** (len(stem_blocks) - 1))
    dense("embedding", (side * side * cin,), (dim,))
    p["Transformer/posembed_input/pos_embedding"] = rng.normal(0, 0.5, (1, grid * grid, dim)).astype(np.float32)
    p["Transformer/scaleembed_input/scale_embedding"] = rng.normal(0, 0.5, (1, scales, dim)).astype(np.float32)
    p["Transformer/cls"] = rng.normal(0, 0.5, (1, 1, dim)).astype(np.float32)
    for k in range(layers):
        e = f"Transformer/encoderblock_{k}"
        norm(f"{e}/LayerNorm_0", dim)
        for proj in ("query", "key", "value"):
            dense(f"{e}/MultiHeadDotProductAttention_1/{proj}", (dim,), (heads, dim // heads))
        dense(f"{e}/MultiHeadDotProductAttention_1/out", (heads, dim // heads), (dim,))
        norm(f"{e}/LayerNorm_2", dim)
        dense(f"{e}/MlpBlock_3/Dense_0", (dim,), (mlp,))
        dense(f"{e}/MlpBlock_3/Dense_1", (mlp,), (dim,))
    norm("Transformer/encoder_norm", dim)
    dense("head", (dim,), (classes,))
    return p


def _save_npz(path: Path, params: dict[str, np.ndarray], extra: dict | None = None) -> Path:
    arrays = {f"opt/target/{k}": v for k, v in params.items()}
    arrays["opt/state/step"] = np.array(7)  # optimizer state beside the weights, as in the released files
    np.savez(path, **arrays, **(extra or {}))
    return path


@pytest.mark.parametrize("stem_blocks, classes", [((1,), 1), ((2, 1), 10)])
def test_conversion_reproduces_the_official_forward(tmp_path, stem_blocks, classes):
    from hf_fiqa.models.musiq.convert_musiq import convert_musiq_checkpoint
    from reference_musiq import reference_forward

    params = _official_params(np.random.default_rng(4), stem_blocks=stem_blocks, classes=classes)
    npz = _save_npz(tmp_path / "musiq.npz", params)
    model = convert_musiq_checkpoint(npz, tmp_path / "out", scales=(32, 48))
    config = model.config
    assert (config.patch_size, config.stem_blocks, config.hidden_size, config.num_attention_heads) == (16, list(stem_blocks), 32, 2)
    assert (config.intermediate_size, config.num_hidden_layers, config.spatial_grid_size, config.num_scales) == (48, 2, 4, 3)
    assert config.head == ("distribution" if classes > 1 else "score")

    batch = MUSIQImageProcessor.from_pretrained(tmp_path / "out")([_photo(), _photo(40, 30, seed=1)])
    assert int(batch["attention_mask"][1].sum()) < batch["pixel_values"].shape[1]  # padding is exercised
    with torch.no_grad():
        ours = model(**_model_inputs(batch)).logits.double().numpy()
    theirs = reference_forward(params, batch["pixel_values"].permute(0, 1, 3, 4, 2).numpy(),
                               batch["spatial_positions"].numpy(), batch["scale_ids"].numpy(),
                               batch["attention_mask"].numpy())
    assert np.std(theirs[:, 0]) > 1e-2 or classes > 1
    np.testing.assert_allclose(ours, theirs, atol=2e-4, rtol=1e-4)
    reloaded = MUSIQForImageQualityAssessment.from_pretrained(tmp_path / "out").eval()
    with torch.no_grad():
        # Same weights; only float rounding may differ (buffer alignment can pick other SIMD paths).
        np.testing.assert_allclose(reloaded(**_model_inputs(batch)).logits.numpy(), ours, atol=1e-6, rtol=0)


def test_wrong_weight_layout_would_be_caught(tmp_path):
    """Guards the equality above: a conv kernel read as IOHW instead of HWIO changes the output."""
    from hf_fiqa.models.musiq.convert_musiq import convert_musiq_checkpoint
    from reference_musiq import reference_forward

    params = _official_params(np.random.default_rng(5))
    model = convert_musiq_checkpoint(_save_npz(tmp_path / "a.npz", params), tmp_path / "out", scales=(32, 48))
    batch = _processor()(_photo())
    swapped = dict(params)
    swapped["block1/unit1/conv2/kernel"] = params["block1/unit1/conv2/kernel"].transpose(1, 0, 2, 3)
    with torch.no_grad():
        ours = model(**_model_inputs(batch)).logits.double().numpy()
    theirs = reference_forward(swapped, batch["pixel_values"].permute(0, 1, 3, 4, 2).numpy(),
                               batch["spatial_positions"].numpy(), batch["scale_ids"].numpy(),
                               batch["attention_mask"].numpy())
    assert np.abs(ours - theirs).max() > 1e-3


def test_conversion_reports_every_bad_key(tmp_path):
    from hf_fiqa.models.conversion import CheckpointError
    from hf_fiqa.models.musiq.convert_musiq import convert_musiq_checkpoint

    params = _official_params(np.random.default_rng(6))
    del params["Transformer/encoderblock_1/LayerNorm_2/scale"]
    params["Transformer/encoderblock_0/MlpBlock_3/Dense_1/bias"] = np.zeros(5, np.float32)
    params["Transformer/extra/thing"] = np.zeros(1, np.float32)
    with pytest.raises(CheckpointError) as info:
        convert_musiq_checkpoint(_save_npz(tmp_path / "bad.npz", params), tmp_path / "out", scales=(32, 48))
    message = str(info.value)
    assert "encoderblock_1/LayerNorm_2/scale" in message and "Transformer/extra/thing" in message
    assert "encoderblock_0/MlpBlock_3/Dense_1/bias: shape (5,)" in message


def test_conversion_cli_and_unreadable_files(tmp_path, capsys):
    from hf_fiqa.commands.convert import add_converter
    from hf_fiqa.models.conversion import CONVERTERS

    parser = __import__("argparse").ArgumentParser()
    add_converter(parser.add_subparsers(dest="model", required=True), "musiq", CONVERTERS["musiq"])

    def run_cli(argv):
        args = parser.parse_args(["musiq", *argv])
        return args.func(args)

    good = _save_npz(tmp_path / "good.npz", _official_params(np.random.default_rng(7)))
    assert run_cli([str(good), str(tmp_path / "out"), "--scales", "32,48"]) == 0
    assert MUSIQImageProcessor.from_pretrained(tmp_path / "out").scales == [32, 48]

    (tmp_path / "notes.npz").write_text("not an archive")
    np.savez(tmp_path / "objects.npz", weights=np.array([{"a": 1}], dtype=object))
    for name in ("notes.npz", "objects.npz", "absent.npz"):
        assert run_cli([str(tmp_path / name), str(tmp_path / "x")]) == 2
        assert name in capsys.readouterr().err


def test_label_range_maps_the_score_head_only():
    from hf_fiqa.models.musiq import MUSIQOutput

    torch.manual_seed(0)
    model = MUSIQForImageQualityAssessment(MUSIQConfig.tiny()).eval()
    with torch.no_grad():
        model.head.weight.normal_()  # the head starts at zero; give it something to say
    inputs = _model_inputs(_processor()([_photo(), _photo(40, 30, seed=1)]))
    target = torch.rand(2)
    with torch.no_grad():
        unit = model(**inputs, labels=target)
        model.config.label_range = [0.0, 100.0]
        mapped = model(**inputs, labels=target)
        model.config.label_range = None
    assert isinstance(mapped, MUSIQOutput)
    torch.testing.assert_close(mapped.score, 100.0 * unit.score)
    torch.testing.assert_close(mapped.logits, unit.logits)
    torch.testing.assert_close(mapped.loss, unit.loss)
    with pytest.raises(ValueError, match="label_range"):
        MUSIQConfig.tiny(head="distribution", loss_type="emd", label_range=[1, 10])
    with pytest.raises(ValueError, match="label_range"):
        MUSIQConfig.tiny(label_range=[1])
