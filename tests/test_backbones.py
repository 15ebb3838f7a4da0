"""Recognizer trunks as transformers backbones, and MANIQA sitting on one (``MANIQAConfig.backbone_config``).

What users rely on: ``AutoBackbone`` builds the trunk from a recognizer's config once ``hf_fiqa.register()`` ran;
the maps it returns are exactly the recognizer's own intermediate activations (so a recognizer checkpoint loads
into it unchanged); MANIQA on that trunk scores the same from pixels as from features computed beforehand (what
makes caching a frozen trunk's features valid); the whole model saves and loads; training on cached features moves
only the head.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def registered():
    import hf_fiqa

    hf_fiqa.register()


def tiny_mobilefacenet(**kwargs):
    from hf_fiqa.models.mobilefacenet import MobileFaceNetConfig

    return MobileFaceNetConfig(embedding_size=16, blocks=(1, 1, 1), stem_width=8, stage_width=16, sep_width=32,
                               image_size=32, **kwargs)


def tiny_dlib(**kwargs):
    from hf_fiqa.models.dlib_resnet import DlibResNetConfig

    return DlibResNetConfig(stem_width=8, stage_widths=(8, 16, 16), stage_blocks=(1, 1, 1), embedding_size=16,
                            image_size=64, **kwargs)


def _trunk_maps(model, x):
    """The recognizer's own activations after its stem and every stage (and MobileFaceNet's ``sep``)."""
    out = []
    x = model.stem(x)
    if hasattr(model, "stem_dw"):
        x = model.stem_dw(x)
    out.append(x)
    for stage in model.stages:
        x = stage(x)
        out.append(x)
    if hasattr(model, "sep"):
        out.append(model.sep(x))
    return out


@pytest.mark.parametrize("make", [tiny_mobilefacenet, tiny_dlib])
def test_backbone_returns_the_recognizers_own_maps(make, tmp_path):
    from transformers import AutoBackbone, AutoModel

    torch.manual_seed(0)
    recognizer = AutoModel.from_config(make()).eval()
    recognizer.save_pretrained(tmp_path)
    config = make(out_features=["stage1", "stage3"])
    backbone = type(AutoBackbone.from_config(config)).from_pretrained(tmp_path, out_features=["stage1", "stage3"]).eval()
    assert backbone.out_features == ["stage1", "stage3"]
    x = torch.randn(2, 3, config.image_size, config.image_size)
    with torch.no_grad():
        maps = backbone(x).feature_maps
        expected = _trunk_maps(recognizer, x)
    names = backbone.stage_names
    assert [m.shape[1] for m in maps] == backbone.channels
    for got, name in zip(maps, ["stage1", "stage3"]):
        torch.testing.assert_close(got, expected[names.index(name)])


def test_out_features_are_checked_and_saved():
    config = tiny_mobilefacenet(out_features=["stage2", "sep"])
    assert config.out_indices == [2, 4]
    again = type(config).from_dict(config.to_dict())
    assert again.out_features == ["stage2", "sep"]
    with pytest.raises(ValueError, match="stage_names"):
        tiny_mobilefacenet(out_features=["stage9"])


def maniqa_on(trunk_config, grid):
    from hf_fiqa.models.maniqa import MANIQAConfig, MANIQAForImageQualityAssessment

    torch.manual_seed(0)
    config = MANIQAConfig(backbone_config=trunk_config, feature_grid=grid, image_size=trunk_config.image_size,
                          embed_dim=16, num_tab=1, swin_depths=[1], swin_num_heads=[2], window_size=grid, mlp_dim=16,
                          dropout=0.0, drop_path=0.0, label_range=[0.0, 100.0])
    return MANIQAForImageQualityAssessment(config).eval()


@pytest.mark.parametrize("make,grid", [(tiny_mobilefacenet, 2), (tiny_dlib, 2)])
def test_maniqa_on_a_trunk_scores_the_same_from_cached_features(make, grid, tmp_path):
    model = maniqa_on(make(out_features=["stage2", "stage3"]), grid)
    size = model.config.image_size
    x = torch.randn(3, 3, size, size)
    with torch.no_grad():
        direct = model(pixel_values=x)
        features = model.backbone_features(x)
        cached = model(backbone_features=features)
    assert features.shape == (3, sum(model.backbone.channels), grid, grid)
    torch.testing.assert_close(direct.score, cached.score)
    assert direct.patch_scores.shape == (3, grid, grid)
    model.save_pretrained(tmp_path)
    from hf_fiqa.models.maniqa import MANIQAForImageQualityAssessment

    loaded = MANIQAForImageQualityAssessment.from_pretrained(tmp_path).eval()
    assert loaded.config.backbone_config.out_features == ["stage2", "stage3"]
    with torch.no_grad():
        torch.testing.assert_close(loaded(pixel_values=x).score, direct.score)


def test_backbone_config_errors_name_the_field():
    from hf_fiqa.models.maniqa import MANIQAConfig

    with pytest.raises(ValueError, match="unknown to AutoConfig"):
        MANIQAConfig(backbone_config={"model_type": "no-such-recognizer"}, feature_grid=7, image_size=112)
    with pytest.raises(ValueError, match="feature_grid"):
        MANIQAConfig(backbone_config=tiny_mobilefacenet(), image_size=32)
    with pytest.raises(ValueError, match="image_size"):
        MANIQAConfig(backbone_config=tiny_mobilefacenet(), feature_grid=2, image_size=64, window_size=2)


def test_training_on_cached_features_moves_only_the_head(tmp_path):
    from hf_fiqa.recipes.quality_net import PhaseConfig, predict_from_features, train_quality_head

    model = maniqa_on(tiny_mobilefacenet(out_features=["stage3", "sep"]), 2)
    trunk_before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    head_before = {k: v.clone() for k, v in model.stage1.state_dict().items()}
    rng = np.random.default_rng(0)
    size = model.config.image_size
    with torch.no_grad():
        features = model.backbone_features(torch.randn(64, 3, size, size)).numpy().astype(np.float16)
    labels = rng.uniform(0, 100, size=64)
    fitted, history = train_quality_head(tmp_path / "head", model, features, labels, np.arange(64),
                                         PhaseConfig(2, 1e-3, 16), progress=False)
    assert len(history["fit"]) == 2 and (tmp_path / "head" / "fit.safetensors").is_file()
    for key, value in fitted.backbone.state_dict().items():
        torch.testing.assert_close(value, trunk_before[key])
    assert any(not torch.equal(v, head_before[k]) for k, v in fitted.stage1.state_dict().items())
    scores = predict_from_features(fitted, features)
    assert scores.shape == (64,) and np.isfinite(scores).all()


@pytest.mark.parametrize("make", [tiny_mobilefacenet, tiny_dlib])
def test_tuning_the_last_stage_moves_that_stage_only_and_scores_as_from_pixels(make, tmp_path):
    """The tuned-last-stage fit: the last stage and the head learn, every earlier trunk weight and every batch-norm
    statistic stays the recognizer's; the fitted model scores pixels as the cached path does."""
    from hf_fiqa.recipes.quality_net import PhaseConfig, last_stage_inputs, predict_from_features, train_quality_head

    model = maniqa_on(make(out_features=["stage2", "stage3"]), 2)
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    size = model.config.image_size
    crops = np.random.default_rng(0).integers(0, 256, size=(48, size, size, 3), dtype=np.uint8)
    pixels = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 127.5 - 1
    processor = lambda images, return_tensors: {"pixel_values": torch.from_numpy(np.stack(images)).permute(  # noqa: E731
        0, 3, 1, 2).float() / 127.5 - 1}
    with torch.no_grad():
        features = model.backbone_features(pixels).numpy().astype(np.float16)
    inputs = last_stage_inputs(model, processor, crops, batch_size=16, progress=False)
    labels = np.random.default_rng(1).uniform(0, 100, size=48)
    fitted, history = train_quality_head(tmp_path / "tuned", model, features, labels, np.arange(48),
                                         PhaseConfig(2, 1e-2, 16), progress=False, stage_inputs=inputs)
    assert len(history["fit"]) == 2
    after = fitted.backbone.state_dict()
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert moved and all(k.startswith("stages.2.") for k in moved)  # stage3 is stages[2]
    assert not any(k.endswith(("running_mean", "running_var")) for k in moved)
    with torch.no_grad():
        direct = fitted(pixel_values=pixels).score.double().numpy()
    np.testing.assert_allclose(predict_from_features(fitted, features, stage_inputs=inputs), direct, atol=2e-2)


# Runs where hf_fiqa cannot be imported: the trunk's code must come from the saved folder.
WITHOUT_PACKAGE = r"""
import sys, torch
sys.modules["hf_fiqa"] = None  # any `import hf_fiqa...` now raises ImportError
from transformers import AutoModel
model = AutoModel.from_pretrained(sys.argv[1], trust_remote_code=True).eval()
x = torch.load(sys.argv[2])
with torch.no_grad():
    print(type(model.backbone).__name__, float(model(pixel_values=x).score[0]))
"""


@pytest.mark.parametrize("make", [tiny_mobilefacenet, tiny_dlib])
def test_a_packaged_maniqa_on_a_trunk_loads_without_hf_fiqa(make, tmp_path):
    import os
    import subprocess
    import sys

    from hf_fiqa.hub import package_quality_model

    model = maniqa_on(make(out_features=["stage2", "stage3"]), 2)
    folder = tmp_path / "model"
    model.save_pretrained(folder)
    package_quality_model(folder, write_card=False)
    size = model.config.image_size
    x = torch.randn(1, 3, size, size)
    torch.save(x, tmp_path / "x.pt")
    with torch.no_grad():
        expected = float(model(pixel_values=x).score[0])
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HOME=str(tmp_path / "hf-home"), HF_HUB_OFFLINE="1")
    done = subprocess.run([sys.executable, "-c", WITHOUT_PACKAGE, str(folder), str(tmp_path / "x.pt")], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    name, score = done.stdout.split()[-2:]
    assert name == type(model.backbone).__name__ and float(score) == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("make", [tiny_mobilefacenet, tiny_dlib])
def test_one_trunk_pass_gives_features_and_the_recognizers_embeddings(make, tmp_path):
    """The main job embeds and caches trunk features in one forward per face: the embeddings must be exactly the
    recognizer's own."""
    from transformers import AutoModel

    from hf_fiqa.models.maniqa import MANIQAImageProcessor
    from hf_fiqa.recipes.quality_net import trunk_pass

    torch.manual_seed(0)
    recognizer = AutoModel.from_config(make()).eval()
    last = recognizer.trunk_output
    model = maniqa_on(make(out_features=["stage1", last]), 2)
    model.backbone.load_state_dict(recognizer.state_dict(), strict=False)
    size = model.config.image_size
    processor = MANIQAImageProcessor(crop_size=size, policy="resize")
    crops = np.random.default_rng(0).integers(0, 256, size=(5, size, size, 3), dtype=np.uint8)
    features, embeddings = trunk_pass(model, processor, crops, recognizer=recognizer, batch_size=2, progress=False)
    pixels = processor(list(crops), return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        np.testing.assert_allclose(embeddings, recognizer(pixel_values=pixels).embeddings.numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(features, model.backbone_features(pixels).numpy(), rtol=1e-2, atol=1e-3)  # float16
    assert features.dtype == np.float16
    with pytest.raises(ValueError, match="last of out_features"):
        trunk_pass(maniqa_on(make(out_features=["stem", "stage1"]), 2), processor, crops, recognizer=recognizer)
