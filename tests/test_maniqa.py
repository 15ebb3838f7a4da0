"""MANIQA: config checks, model outputs, official-structure equality, dtypes, torch.compile, image processor."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from hf_fiqa.io import ImageReadError
from hf_fiqa.models.maniqa import MANIQAConfig, MANIQAForImageQualityAssessment, MANIQAImageProcessor
from reference_maniqa import ReferenceMANIQA


@pytest.fixture(scope="module")
def tiny_pair():
    """A tiny fast model and the official-structure reference holding the same random weights."""
    from hf_fiqa.models.maniqa.convert_maniqa import official_to_hf

    torch.manual_seed(0)
    config = MANIQAConfig.tiny()
    reference = ReferenceMANIQA(config).eval()
    with torch.no_grad():  # keep the ReLU-ended score head alive so scores differ between inputs
        reference.fc_score[3].bias.fill_(0.5)
    model = MANIQAForImageQualityAssessment(config).eval()
    model.load_state_dict(official_to_hf(reference.state_dict(), model))
    return model, reference


# -- config -------------------------------------------------------------------------------------------------
def test_default_config_is_the_paper_model():
    config = MANIQAConfig()
    assert (config.backbone, config.image_size, config.patch_size, config.grid_size) == ("vit_base_patch8_224", 224, 8, 28)
    assert config.feature_layers == [6, 7, 8, 9]
    assert (config.embed_dim, config.num_tab, config.swin_depths, config.swin_num_heads) == (768, 2, [2, 2], [4, 4])
    assert (config.window_size, config.mlp_dim, config.swin_residual_scale, config.dropout) == (4, 768, 0.8, 0.1)


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"image_size": 225}, "image_size"),
        ({"feature_layers": (6, 12)}, "feature_layers"),
        ({"window_size": 5}, "window_size"),
        ({"swin_num_heads": (5, 4)}, "swin_num_heads"),
        ({"loss_type": "huber"}, "loss_type"),
        ({"dropout": 1.5}, "dropout"),
    ],
)
def test_inconsistent_config_names_the_field(overrides, field):
    with pytest.raises(ValueError, match=rf"MANIQAConfig\.{field}"):
        MANIQAConfig(**overrides)


def test_config_roundtrips_through_json(tmp_path):
    config = MANIQAConfig.tiny(swin_residual_scale=0.13)
    config.save_pretrained(tmp_path)
    loaded = MANIQAConfig.from_pretrained(tmp_path)
    assert loaded.to_dict() == config.to_dict()


def test_malformed_config_file_fails_clearly(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "maniqa", "image_size": 30, "patch_size": 4}')
    with pytest.raises(ValueError, match="image_size"):
        MANIQAConfig.from_pretrained(tmp_path)


# -- model ----------------------------------------------------------------------------------------------------
def test_only_used_backbone_blocks_are_built():
    config = MANIQAConfig.tiny(feature_layers=(0, 1))
    model = MANIQAForImageQualityAssessment(config)
    assert len(model.backbone.blocks) == 2
    assert not any(k.startswith("backbone.head") or k.startswith("backbone.norm.") for k in model.state_dict())


def test_outputs_shapes_and_loss(tiny_pair):
    model, _ = tiny_pair
    x = torch.randn(5, 3, 32, 32)
    out = model(x, labels=torch.rand(5))
    g = model.config.grid_size
    assert out.score.shape == (5,)
    assert out.patch_scores.shape == out.patch_weights.shape == (5, g, g)
    assert torch.all((out.patch_weights >= 0) & (out.patch_weights <= 1))
    # The score is the weight-normalised mean of the patch scores.
    expected = (out.patch_scores * out.patch_weights).sum((1, 2)) / out.patch_weights.sum((1, 2))
    torch.testing.assert_close(out.score, expected)
    assert out.loss.ndim == 0 and out.loss > 0
    out.loss.backward()
    assert model.score_head[0].weight.grad is not None


def test_wrong_input_size_is_a_clear_error(tiny_pair):
    model, _ = tiny_pair
    with pytest.raises(ValueError, match=r"\(B, 3, 32, 32\)"):
        model(torch.randn(1, 3, 48, 48))


def test_same_numbers_as_official_structure(tiny_pair):
    model, reference = tiny_pair
    x = torch.randn(6, 3, 32, 32)
    with torch.no_grad():
        ours, theirs = model(x).score, reference(x)
    assert ours.std() > 1e-3, "scores should vary across inputs for this comparison to mean anything"
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)


def test_attention_in_chunks_gives_the_same_scores(tiny_pair, monkeypatch):
    from hf_fiqa.models.maniqa import modeling_maniqa

    model, _ = tiny_pair
    x = torch.randn(5, 3, 32, 32)
    with torch.no_grad():
        whole = model(x).score
        monkeypatch.setattr(modeling_maniqa, "_ATTENTION_ELEMENTS", 1)  # one sample per chunk
        chunked = model(x).score
    torch.testing.assert_close(chunked, whole, atol=1e-6, rtol=0)


def test_folded_query_matches_separate_projections(tiny_pair):
    """Inference folds q and k projections; with gradients on, the plain projections run: same scores."""
    model, _ = tiny_pair
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        folded = model(x).score
    plain = model(x).score.detach()
    torch.testing.assert_close(folded, plain, atol=1e-5, rtol=0)


def test_batch_does_not_change_scores(tiny_pair):
    model, _ = tiny_pair
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        batched = model(x).score
        single = torch.cat([model(x[i:i + 1]).score for i in range(4)])
    torch.testing.assert_close(batched, single, atol=1e-6, rtol=0)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_close_to_float32(tiny_pair, dtype):
    model, _ = tiny_pair
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        full = model(x).score
        half = model.to(dtype)(x.to(dtype)).score
    model.float()
    assert half.dtype == dtype and torch.isfinite(half).all()
    torch.testing.assert_close(half.float(), full, atol=5e-2, rtol=5e-2)


def test_torch_compile_matches_eager(tiny_pair):
    model, _ = tiny_pair
    x = torch.randn(2, 3, 32, 32)
    compiled = torch.compile(model, backend="aot_eager", fullgraph=False)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x).score, model(x).score, atol=1e-5, rtol=0)


# -- image processor ------------------------------------------------------------------------------------------
def _photo(width=300, height=200, seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


@pytest.mark.parametrize("policy, crops", [("resize", 1), ("center_crop", 1), ("five_crop", 5), ("grid", 6)])
def test_policies_and_crop_mapping(policy, crops):
    processor = MANIQAImageProcessor(crop_size=64, policy=policy, grid_rows=2, grid_cols=3)
    batch = processor([_photo(), _photo(seed=1)])
    assert batch["pixel_values"].shape == (2 * crops, 3, 64, 64)
    assert batch["crop_to_image"].tolist() == [0] * crops + [1] * crops
    assert batch["pixel_values"].min() >= -1 and batch["pixel_values"].max() <= 1


def test_five_crop_corners_are_the_corners():
    image = _photo(100, 80)
    processor = MANIQAImageProcessor(crop_size=32, policy="five_crop", image_mean=(0, 0, 0), image_std=(1, 1, 1))
    pixels = processor(image)["pixel_values"]
    corner = (np.asarray(image)[-32:, -32:] / 255.0).transpose(2, 0, 1)
    np.testing.assert_allclose(pixels[3].numpy(), corner, atol=1e-6)


def test_processing_is_deterministic():
    processor = MANIQAImageProcessor(crop_size=64, policy="grid")
    a = processor(_photo())["pixel_values"]
    b = processor(_photo())["pixel_values"]
    assert torch.equal(a, b)


def test_aggregate_scores_averages_per_image():
    scores = torch.tensor([1.0, 3.0, 10.0, 20.0, 30.0])
    owners = torch.tensor([0, 0, 1, 1, 1])
    torch.testing.assert_close(MANIQAImageProcessor.aggregate_scores(scores, owners), torch.tensor([2.0, 20.0]))


def test_small_image_is_upscaled_to_fit_the_crop():
    processor = MANIQAImageProcessor(crop_size=64, policy="five_crop")
    assert processor(_photo(20, 10))["pixel_values"].shape == (5, 3, 64, 64)


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "I;16", "I", "1"])
def test_odd_modes_become_rgb(mode, tmp_path):
    base = _photo(80, 60)
    if mode == "I;16":
        img = Image.fromarray((np.asarray(base.convert("L"), dtype=np.uint16) * 257))
    else:
        img = base.convert(mode)
    suffix = ".tiff" if mode in ("CMYK", "I;16", "I") else ".png"
    path = tmp_path / f"odd{suffix}"
    img.save(path)
    pixels = MANIQAImageProcessor(crop_size=32)([path, img])["pixel_values"]
    assert pixels.shape == (2, 3, 32, 32) and torch.isfinite(pixels).all()


def test_sixteen_bit_is_scaled_not_clipped(tmp_path):
    grey = np.full((40, 40), 32768, dtype=np.uint16)  # mid grey in 16 bits
    path = tmp_path / "mid.png"
    Image.fromarray(grey).save(path)
    pixels = MANIQAImageProcessor(crop_size=32, image_mean=(0, 0, 0), image_std=(1, 1, 1))(path)["pixel_values"]
    assert abs(float(pixels.mean()) - 0.5) < 0.01


def test_exif_rotation_is_applied(tmp_path):
    image = _photo(120, 60)  # landscape pixels
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif.tobytes())
    processor = MANIQAImageProcessor(crop_size=60, policy="center_crop")
    from hf_fiqa.io import load_image

    assert load_image(path).size == (60, 120)  # displayed as portrait
    assert processor(path)["pixel_values"].shape == (1, 3, 60, 60)


@pytest.mark.parametrize(
    "content, reason",
    [(b"", "empty"), (b"this is a text file, not an image\n", "not a recognised image"), (None, "truncated")],
)
def test_unreadable_files_name_the_input(tmp_path, content, reason):
    path = tmp_path / "bad.jpg"
    if content is None:  # a real JPEG cut in half
        buffer = io.BytesIO()
        _photo().save(buffer, format="JPEG")
        content = buffer.getvalue()[: len(buffer.getvalue()) // 2]
    path.write_bytes(content)
    with pytest.raises(ImageReadError, match="bad.jpg") as info:
        MANIQAImageProcessor(crop_size=32)([_photo(), path])
    assert reason.split()[0] in str(info.value).lower() or "truncated" in str(info.value).lower()


def test_processor_config_roundtrip(tmp_path):
    processor = MANIQAImageProcessor(crop_size=48, policy="grid", grid_rows=2, grid_cols=2)
    processor.save_pretrained(tmp_path)
    loaded = MANIQAImageProcessor.from_pretrained(tmp_path)
    assert (loaded.crop_size, loaded.policy, loaded.grid_rows, loaded.grid_cols) == (48, "grid", 2, 2)


def test_unknown_policy_rejected():
    with pytest.raises(ValueError, match="policy"):
        MANIQAImageProcessor(policy="random_crop")


def test_training_after_inference_mode_scoring():
    """Tables cached while scoring under inference_mode must not break a later training step."""
    from hf_fiqa.models.maniqa import modeling_maniqa

    modeling_maniqa._TABLES.clear()
    model = MANIQAForImageQualityAssessment(MANIQAConfig.tiny())
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        model.eval()(x)
    loss = model.train()(x, labels=torch.rand(2)).loss
    loss.backward()
    assert model.stage1.swin.groups[0].blocks[0].attn.relative_position_bias_table.grad is not None


# -- label units ----------------------------------------------------------------------------------------------------
def test_label_range_maps_score_and_leaves_the_loss_on_the_unit_target():
    from hf_fiqa.models.maniqa import MANIQAOutput

    torch.manual_seed(0)
    model = MANIQAForImageQualityAssessment(MANIQAConfig.tiny(loss_type="mse")).eval()
    x, target = torch.randn(3, 3, 32, 32), torch.rand(3)
    with torch.no_grad():
        unit = model(x, labels=target)
        model.config.label_range = [1.0, 5.0]  # e.g. a MOS scale; validated when set
        mapped = model(x, labels=target)
        model.config.label_range = None
    assert isinstance(mapped, MANIQAOutput)
    torch.testing.assert_close(mapped.score, 1.0 + 4.0 * unit.score)
    torch.testing.assert_close(mapped.patch_scores, 1.0 + 4.0 * unit.patch_scores)
    torch.testing.assert_close(mapped.loss, unit.loss)  # on the [0, 1] target, before the mapping
    torch.testing.assert_close(unit.loss, torch.nn.functional.mse_loss(unit.score, target))


def test_label_range_is_validated_and_saved(tmp_path):
    assert MANIQAConfig.tiny().label_range is None
    for bad in ([5.0, 1.0], [0.0], "high", [0.0, float("nan")]):
        with pytest.raises(ValueError, match="label_range"):
            MANIQAConfig.tiny(label_range=bad)
    config = MANIQAConfig.tiny()
    with pytest.raises(ValueError, match="label_range"):
        config.label_range = [3, 3]
    config.label_range = (0, 100)
    config.save_pretrained(tmp_path)
    assert MANIQAConfig.from_pretrained(tmp_path).label_range == [0.0, 100.0]


def test_quality_calibration_maps_score_monotonically_to_0_100():
    from hf_fiqa.models.maniqa.modeling_maniqa import calibrated_quality

    calibration = {"intercept": 5.0, "slope": -0.1, "meaning": "test"}
    config = MANIQAConfig.tiny(label_range=[0.0, 100.0], quality_calibration=calibration)
    out = MANIQAForImageQualityAssessment(config).eval()(pixel_values=torch.randn(3, 3, 32, 32))
    torch.testing.assert_close(out.quality, calibrated_quality(out.score, calibration))
    scores = torch.tensor([-50.0, 0.0, 40.0, 50.0, 60.0, 100.0, 200.0], dtype=torch.float64)
    mapped = calibrated_quality(scores, calibration)
    torch.testing.assert_close(mapped, 100.0 / (1.0 + torch.exp(5.0 - 0.1 * scores)))
    assert (mapped.diff() > 0).all() and mapped[3] == 50.0 and (mapped > 0).all() and (mapped < 100).all()
    assert MANIQAForImageQualityAssessment(MANIQAConfig.tiny())(pixel_values=torch.randn(1, 3, 32, 32)).quality is None
    for bad in ({"intercept": 1.0, "slope": 0.0}, {"intercept": float("nan"), "slope": 1.0}, {"slope": 1.0}, [1, 2]):
        with pytest.raises(ValueError, match="quality_calibration"):
            MANIQAConfig.tiny(quality_calibration=bad)
