"""timm-style ``forward_features`` / ``forward_head`` of MANIQA and MUSIQ: ``forward`` is made of them, and nothing
outside the model files rebuilds the models' internals."""

from __future__ import annotations

import re
from pathlib import Path

import torch

SRC = Path(__file__).resolve().parents[1] / "src" / "hf_fiqa"


def test_maniqa_forward_is_head_of_features():
    from hf_fiqa.models.maniqa import MANIQAConfig, MANIQAForImageQualityAssessment

    torch.manual_seed(0)
    model = MANIQAForImageQualityAssessment(MANIQAConfig.tiny(label_range=[0.0, 100.0])).eval()
    size = model.config.image_size
    x = torch.rand(2, 3, size, size) * 2 - 1
    with torch.no_grad():
        out = model(pixel_values=x)
        tokens = model.forward_features(x)
        score = model.forward_head(tokens)
        pooled = model.forward_head(tokens, pre_logits=True)
        _, patch_scores, patch_weights = model.forward_head(tokens, return_patches=True)
    grid = model.config.grid_size
    assert tokens.shape == (2, grid * grid, model.config.embed_dim // 2)
    assert score.shape == (2, 1) and pooled.shape == (2, tokens.shape[-1])
    assert torch.equal(out.score, (score * 100.0).squeeze(-1))  # label units: low + (high - low) * score
    assert torch.equal(out.patch_weights, patch_weights.squeeze(-1).reshape(2, grid, grid))
    assert torch.allclose(pooled, tokens.mean(1))
    assert patch_scores.shape == (2, grid * grid, 1)


def test_maniqa_forward_features_checks_the_input():
    import pytest

    from hf_fiqa.models.maniqa import MANIQAConfig, MANIQAForImageQualityAssessment

    model = MANIQAForImageQualityAssessment(MANIQAConfig.tiny())
    with pytest.raises(ValueError, match="MANIQAImageProcessor"):
        model.forward_features(torch.zeros(1, 3, 7, 7))


def test_musiq_forward_is_head_of_features():
    from hf_fiqa.models.musiq import MUSIQConfig, MUSIQForImageQualityAssessment

    torch.manual_seed(0)
    config = MUSIQConfig.tiny()
    model = MUSIQForImageQualityAssessment(config).eval()
    torch.nn.init.normal_(model.head.weight)  # zero-initialised: make the check meaningful
    p, length = config.patch_size, 6
    x = torch.randn(2, length, 3, p, p)
    positions = torch.randint(0, config.spatial_grid_size ** 2, (2, length))
    scales = torch.randint(0, config.num_scales, (2, length))
    mask = torch.ones(2, length, dtype=torch.long)
    mask[1, -2:] = 0
    with torch.no_grad():
        out = model(pixel_values=x, spatial_positions=positions, scale_ids=scales, attention_mask=mask)
        features = model.forward_features(x, positions, scales, mask)
        logits = model.forward_head(features)
        cls = model.forward_head(features, pre_logits=True)
    assert features.shape == (2, 1 + length, config.hidden_size) and cls.shape == (2, config.hidden_size)
    assert torch.equal(out.logits, logits)


def test_no_code_outside_the_model_files_rebuilds_their_internals():
    pattern = re.compile(r"\.(backbone_features|stage1|stage2|score_head|weight_head|embed_patches|encoder)\(")
    offenders = []
    for path in SRC.rglob("*.py"):
        if path.parent.name in ("maniqa", "musiq") and path.name.startswith("modeling_"):
            continue
        if path.parts[-2:] == ("faces", "retinaface.py"):  # RetinaFace's own stages
            continue
        offenders += [f"{path.relative_to(SRC)}:{n}" for n, line in enumerate(path.read_text().splitlines(), 1)
                      if pattern.search(line)]
    assert not offenders, offenders
