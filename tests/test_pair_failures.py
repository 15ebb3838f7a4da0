"""Genuine comparisons as a training target (``labels.pair_failures``, ``PairFailureTask``).

What users rely on: the pairs are the comparisons the evaluation makes among the training faces (same person only,
a degraded copy never against its own original, two clean photos once), each with the number of recognizers that
reject it; fitting them beside the labels trains only the head (or the tuned stage) and ranks faces whose
comparisons fail below faces whose comparisons pass, even where the labels say nothing.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch


def test_pairs_are_genuine_never_a_copy_against_its_source_and_clean_pairs_once():
    from hf_fiqa.labels.pair_failures import genuine_pair_failures

    # label rows: 0-2 clean photos of "a", 3 clean of "b", 4 a copy of row 0, 5 a copy of row 3
    persons = np.array(["a", "a", "a", "b", "a", "b"])
    sources = np.array([0, 1, 2, 3, 0, 3])
    clean = np.array([True, True, True, True, False, False])
    emb = np.eye(6, 4, dtype=np.float32)[[0, 0, 1, 2, 0, 2]]  # rows 0, 1, 4 alike; 2 apart; 3 and 5 alike
    pairs = genuine_pair_failures(persons, sources, clean, np.arange(6), {"r": emb}, {"r": 0.5})
    got = {(int(i), int(j)): int(f) for i, j, f in zip(pairs.first, pairs.second, pairs.failures)}
    # a: clean pairs (0,1) (0,2) (1,2) once; the copy 4 against 1 and 2, not its source 0; b: 5 has only its source
    assert got == {(0, 1): 0, (0, 2): 1, (1, 2): 1, (4, 1): 0, (4, 2): 1}
    assert pairs.comparisons == 1 and all(clean[pairs.second])
    # every row's pairs, as first or second photo
    order, start, count = pairs.partners()
    slots = order[start[2]:start[2] + count[2]]
    assert sorted(int(k) % len(pairs) for k in slots) == sorted(k for k, (i, j) in enumerate(got) if 2 in (i, j))
    # rows left out of the training set take no part
    assert 3 not in genuine_pair_failures(persons, sources, clean, np.array([0, 1, 2, 4]), {"r": emb}, {"r": 0.5}).first
    with pytest.raises(ValueError, match="one threshold per recognizer"):
        genuine_pair_failures(persons, sources, clean, np.arange(6), {"r": emb, "s": emb}, {"r": 0.5})


def test_two_recognizers_count_their_rejections():
    from hf_fiqa.labels.pair_failures import genuine_pair_failures

    persons, sources, clean = np.array(["a", "a"]), np.array([0, 1]), np.array([True, True])
    emb = np.array([[1.0, 0.0], [0.8, 0.6]], dtype=np.float32)  # cosine 0.8
    pairs = genuine_pair_failures(persons, sources, clean, np.arange(2), {"x": emb, "y": emb}, {"x": 0.9, "y": 0.7})
    assert pairs.failures.tolist() == [1] and pairs.comparisons == 2


def _tiny_trunk_maniqa():
    import hf_fiqa
    from hf_fiqa.models.maniqa import MANIQAConfig, MANIQAForImageQualityAssessment
    from hf_fiqa.models.mobilefacenet import MobileFaceNetConfig

    hf_fiqa.register()
    trunk = MobileFaceNetConfig(embedding_size=16, blocks=(1, 1, 1), stem_width=8, stage_width=16, sep_width=32,
                                image_size=32, out_features=["stage2", "stage3"])
    torch.manual_seed(0)
    return MANIQAForImageQualityAssessment(MANIQAConfig(
        backbone_config=trunk, feature_grid=2, image_size=32, embed_dim=16, num_tab=1, swin_depths=[1],
        swin_num_heads=[2], window_size=2, mlp_dim=32, dropout=0.0, drop_path=0.0, loss_type="smooth_l1",
        label_range=[0.0, 100.0])).eval()


def _marked_faces(model, n: int = 96):
    """Cached trunk features of ``n`` faces, half of them carrying a bright mark, and their genuine pairs (6 photos
    a person): every comparison with a marked face fails, none other does."""
    from hf_fiqa.labels.pair_failures import genuine_pair_failures

    with torch.no_grad():
        features = model.backbone_features(torch.randn(n, 3, 32, 32)).numpy()
    bad = np.arange(n) % 2 == 1
    features[bad] += 3.0
    persons = np.repeat(np.arange(n // 6), 6).astype(str)
    emb = np.random.default_rng(0).normal(size=(n, 8)).astype(np.float32)
    pairs = genuine_pair_failures(persons, np.arange(n), np.ones(n, bool), np.arange(n), {"r": emb}, {"r": -2.0})
    assert pairs.failures.sum() == 0  # threshold below every similarity: nothing fails yet
    failing = bad[pairs.first] | bad[pairs.second]
    return features.astype(np.float16), bad, type(pairs)(pairs.first, pairs.second, failing.astype(np.int64), 1)


def test_fitting_pairs_moves_only_the_head_and_ranks_failing_faces_lower(tmp_path):
    """Half the faces carry a bright mark in their features and every comparison with one of them fails; the labels
    are uninformative noise. Only the pairs can teach the network that the mark means low quality."""
    from hf_fiqa.recipes.quality_net import PhaseConfig, predict_from_features, train_quality_head

    model = _tiny_trunk_maniqa()
    trunk_before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    features, bad, pairs = _marked_faces(model)
    labels = np.random.default_rng(1).uniform(40, 60, size=len(bad))
    fitted, history = train_quality_head(tmp_path / "pairs", model, features, labels,
                                         np.arange(len(bad)), PhaseConfig(6, 3e-3, 16), progress=False, pairs=pairs)
    assert len(history["fit"]) == 6 and (tmp_path / "pairs" / "fit.safetensors").is_file()
    for key, value in fitted.backbone.state_dict().items():
        torch.testing.assert_close(value, trunk_before[key])
    scores = predict_from_features(fitted, features)
    assert scores[bad].mean() < scores[~bad].mean() - 5


def test_the_comparisons_alone_ignore_the_labels(tmp_path):
    """``label_weight=0`` (the "pairs" objective): labels that say the marked faces are the good ones change
    nothing; the fit is the same as with the opposite labels, and the marked faces still rank lower."""
    from hf_fiqa.recipes.quality_net import PhaseConfig, predict_from_features, train_quality_head

    model = _tiny_trunk_maniqa()
    features, bad, pairs = _marked_faces(model)
    scores = []
    for name, labels in (("wrong", np.where(bad, 90.0, 10.0)), ("right", np.where(bad, 10.0, 90.0))):
        fitted, _ = train_quality_head(tmp_path / name, _tiny_trunk_maniqa(), features, labels, np.arange(len(bad)),
                                       PhaseConfig(4, 3e-3, 16), progress=False, pairs=pairs, label_weight=0.0)
        scores.append(predict_from_features(fitted, features))
    np.testing.assert_array_equal(scores[0], scores[1])
    assert scores[0][bad].mean() < scores[0][~bad].mean()
    with pytest.raises(ValueError, match="label_weight"):
        train_quality_head(tmp_path / "negative", _tiny_trunk_maniqa(), features, labels, np.arange(len(bad)),
                           PhaseConfig(1, 3e-3, 16), progress=False, pairs=pairs, label_weight=-1.0)


def test_pairs_with_the_last_stage_tuned_move_that_stage_and_the_head_only(tmp_path):
    from hf_fiqa.labels.pair_failures import genuine_pair_failures
    from hf_fiqa.recipes.quality_net import PhaseConfig, last_stage_inputs, train_quality_head

    model = _tiny_trunk_maniqa()
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    crops = np.random.default_rng(0).integers(0, 256, size=(32, 32, 32, 3), dtype=np.uint8)
    processor = lambda images, return_tensors: {"pixel_values": torch.from_numpy(np.stack(images)).permute(  # noqa: E731
        0, 3, 1, 2).float() / 127.5 - 1}
    with torch.no_grad():
        features = model.backbone_features(processor(list(crops), "pt")["pixel_values"]).numpy().astype(np.float16)
    inputs = last_stage_inputs(model, processor, crops, batch_size=16, progress=False)
    persons = np.repeat(np.arange(8), 4).astype(str)
    emb = np.random.default_rng(1).normal(size=(32, 8)).astype(np.float32)
    pairs = genuine_pair_failures(persons, np.arange(32), np.ones(32, bool), np.arange(32), {"r": emb}, {"r": 0.0})
    assert 0 < pairs.failures.sum() < len(pairs)
    fitted, _ = train_quality_head(tmp_path / "tuned", model, features, np.full(32, 50.0), np.arange(32),
                                   PhaseConfig(2, 1e-2, 16), progress=False, stage_inputs=inputs, pairs=pairs)
    moved = {k for k, v in fitted.backbone.state_dict().items() if not torch.equal(before[k], v)}
    assert moved and all(k.startswith("stages.2.") for k in moved)
    assert not any(k.endswith(("running_mean", "running_var")) for k in moved)
