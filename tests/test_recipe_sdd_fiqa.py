"""The main job (``hf-fiqa sdd-fiqa``) end to end on a few real photos: every stage, resume, outputs.

Here the same code as the main job runs on the first 48 photos of each dataset (LFW, CFP, CelebA) with one
epoch, so what is checked is the plumbing users rely on: each stage writes its outputs, both recognizers judge,
a second run skips finished stages and reproduces the tables, and the saved hybrid (MANIQA on MobileFaceNet's
trunk) loads with ``AutoModel`` and carries its calibration.
"""

from __future__ import annotations

import json

import numpy as np
import pytest


def small_config(shared, out):
    """The main job on 48 photos per dataset, one epoch, 4 MagFace steps, a second network seed; a third of the
    people held out, so that calibration sees failed and successful comparisons."""
    from hf_fiqa.recipes.sdd_fiqa import RecipeConfig

    return RecipeConfig(shared=shared, output=out, limit=48, fit_epochs=1, batch_size=16, val_fraction=0.3,
                        magface_steps=4, bootstrap=20, seeds=2, progress=False)


@pytest.fixture(scope="module")
def small_run(shared, tmp_path_factory):
    from hf_fiqa.models.dlib_resnet.convert_dlib_resnet import find_installed_dat
    from hf_fiqa.recipes.sdd_fiqa import SDDFIQARecipe

    try:
        find_installed_dat()
    except FileNotFoundError as error:
        pytest.skip(f"dlib's weights come from face-recognition-models: {error}")
    if not (shared / "weights" / "mobilefacenet" / "MobileFaceNet.onnx").is_file():
        pytest.skip("the main job needs MobileFaceNet's release in shared/weights/mobilefacenet")

    out = tmp_path_factory.mktemp("sdd-fiqa")
    config = small_config(shared, out)
    result = SDDFIQARecipe(config).run()
    return out, config, result


def test_every_stage_writes_its_outputs(small_run):
    from hf_fiqa.data.degradations import DEGRADATIONS

    out, config, result = small_run
    for path in ("dlib-resnet/model.safetensors", "mobilefacenet/model.safetensors", "faces-lfw/done.json",
                 "faces-cfp/done.json", "faces-celeba/done.json", "faces-cfp/embeddings_mobilefacenet.npy",
                 "degraded/done.json", "labels.npz", "labels_by_degradation.png", "faces-lfw/trunk_mobilefacenet.npy",
                 "faces-cfp/trunk_mobilefacenet.npy", "degraded/trunk_mobilefacenet.npy",
                 "network/fit.safetensors", "maniqa-sdd-fiqa/model.safetensors", "magface/celeba_norms.npy",
                 "eval/pauc.md", "eval/thresholds.md", "eval/quality_histogram.png", "eval/calibration.md",
                 "eval-mobilefacenet/pauc.md", "eval-mobilefacenet/thresholds.md", "validation.json", "run.json",
                 "maniqa-sdd-fiqa/face_quality_pipeline.py", "maniqa-sdd-fiqa/README.md"):
        assert (out / path).is_file(), path
    labels = np.load(out / "labels.npz")
    # each recognizer labels every face; the network fits their combination (percentiles averaged)
    assert {"quality_dlib", "quality_mobilefacenet", "quality_both"} <= set(labels.files)
    np.testing.assert_array_equal(labels["quality"], labels["quality_both"])
    assert np.isfinite(labels["quality_both"][labels["kind"] >= 0]).any()  # the copies are labelled too
    summary = json.loads((out / "labels_by_degradation.json").read_text())
    assert summary["clean"]["n"] > 0 and set(summary) <= {"clean", *DEGRADATIONS}
    from hf_fiqa.components import COMPONENT_NAMES

    methods = {row["method"] for row in result["report"].rows()}
    baselines = {"maniqa_sdd_fiqa", "detector_confidence", "inter_eye_distance", "face_size", "sharpness",
                 "head_pose_5pt", "random", "magface_own_recognizer", "lightqnet"}  # lightqnet: the source tree's graph
    # every quality component is a row too; without $HF_FIQA_FACE_MESH the dense-only three are left out
    dense_only = {"component:eyes_open", "component:mouth_closed", "component:head_pose_pitch"}
    components = {f"component:{name}" for name in COMPONENT_NAMES}
    assert baselines < methods <= baselines | components and components - dense_only <= methods
    # the same table judged by MobileFaceNet (MS1M)
    assert {row["method"] for row in result["report_mobilefacenet"].rows()} == methods
    assert set(config.timings) >= {"faces-lfw", "faces-cfp", "faces-celeba", "degraded", "labels", "network",
                                   "calibration", "magface", "evaluate"}
    # the calibration check: one row per band, promised vs observed
    bands = result["calibration"]
    assert [b["low"] for b in bands] == [0, 50, 70, 80, 90, 95] and sum(b["pairs"] for b in bands) > 0
    filled = [b for b in bands if b["pairs"]]  # with the observed share's identity-bootstrap interval
    assert all(b["observed_low"] <= b["observed_percent"] <= b["observed_high"] for b in filled)
    assert 0.0 <= result["calibration_pass_rate"] <= 1.0  # can these people tell a 5-point miss?
    assert "identity resamples of these" in (out / "eval" / "calibration.md").read_text()
    # where settings are chosen, the published peer is judged beside the hybrid (both recognizers, both thresholds)
    validation = json.loads((out / "validation.json").read_text())
    assert sum(row["method"] == "lightqnet" for row in validation) == 4
    peer = np.load(out / "validation_peers.npz")["lightqnet"]
    assert peer.ndim == 1 and np.isfinite(peer).any()
    # The discard table works at the EDC table's FMR threshold, not at one of its own.
    fmr_threshold = next(t["value"] for t in json.loads((out / "eval" / "pauc.json").read_text())["thresholds"].values()
                         if t["source"] == "fmr")
    assert f"cosine threshold {fmr_threshold:.4f}" in (out / "eval" / "thresholds.md").read_text()


def test_a_second_seed_refits_the_network_on_the_same_data(small_run):
    from safetensors.torch import load_file

    out, _, result = small_run
    assert [row["seed"] for row in result["seeds"]] == [0, 1]
    first, second = (load_file(str(out / name / "fit.safetensors")) for name in ("network", "network-seed1"))
    head = [k for k in first if not k.startswith("backbone.")]
    assert any(not (first[k] == second[k]).all() for k in head)  # another start and batch order
    assert all((first[k] == second[k]).all() for k in first if k.startswith("backbone."))  # the same frozen trunk
    gains = [v for row in result["seeds"] for k, v in row.items() if k != "seed"]
    assert len(gains) == 16 and np.isfinite(gains).all()  # validation and dev, two judges x two thresholds, per seed
    assert {k.split()[0] for row in result["seeds"] for k in row if k != "seed"} == {"val", "dev"}
    text = (out / "seeds.md").read_text()
    assert "| 0 |" in text and "| 1 |" in text and "mean ± sd" in text


def test_saved_hybrid_loads_calibrated_and_scores_0_to_100(small_run):
    from transformers import AutoModel

    out, _, _ = small_run
    model = AutoModel.from_pretrained(out / "maniqa-sdd-fiqa", trust_remote_code=True).eval()
    calibration = model.config.quality_calibration
    assert {"intercept", "slope", "meaning", "thresholds", "fmr"} <= set(calibration)
    assert set(calibration["thresholds"]) == {"dlib", "mobilefacenet"}
    assert model.config.backbone_config.model_type == "mobilefacenet"
    import torch

    size = model.config.image_size
    quality = model(pixel_values=torch.rand(3, 3, size, size) * 2 - 1).quality
    assert quality.shape == (3,) and bool(((quality >= 0) & (quality <= 100)).all())


def test_a_second_run_skips_finished_stages_and_reproduces_the_table(small_run, shared):
    from hf_fiqa.recipes.sdd_fiqa import SDDFIQARecipe

    out, first, _ = small_run
    before = json.loads((out / "eval" / "pauc.json").read_text())
    finished = ["faces-lfw/embeddings.npy", "faces-celeba/embeddings_mobilefacenet.npy", "degraded/degraded.npz",
                "labels.npz", "degraded/trunk_mobilefacenet.npy", "network/fit.safetensors", "maniqa-sdd-fiqa/model.safetensors",
                "magface/celeba_norms.npy", "network-seed1/fit.safetensors", "seeds.json"]
    stamps = {path: (out / path).stat().st_mtime_ns for path in finished}
    config = small_config(shared, out)
    SDDFIQARecipe(config).run()
    assert {path: (out / path).stat().st_mtime_ns for path in finished} == stamps  # nothing was redone
    # run.json keeps the seconds of the stages this run skipped (the fit's, not a reload's)
    timings = json.loads((out / "run.json").read_text())["timings"]
    assert timings["network"] == first.timings["network"] and timings["faces-lfw"] == first.timings["faces-lfw"]
    after = json.loads((out / "eval" / "pauc.json").read_text())
    assert [r["pauc"] for r in after["results"]] == pytest.approx([r["pauc"] for r in before["results"]])
    assert np.isfinite([r["pauc"] for r in after["results"]]).all()


def test_magface_stage_trains_with_the_published_config(tmp_path):
    """Stage 7 trains in-process from a config the recipe holds (hub_configs/ is not in the wheel): it must be
    hub_configs/magface-iresnet-lfw.yaml with the stage's overrides."""
    from pathlib import Path

    from hf_fiqa.recipes.sdd_fiqa import RecipeConfig, SDDFIQARecipe
    from hf_fiqa.training import TrainConfig

    faces = tmp_path / "labels.csv"
    faces.write_text("path,identity\n")
    recipe = SDDFIQARecipe(RecipeConfig(shared=tmp_path, output=tmp_path / "out", magface_steps=150))
    ours = recipe.magface_train_config(faces, tmp_path / "magface").to_dict()
    published = TrainConfig.from_file(
        Path(__file__).resolve().parents[1] / "hub_configs" / "magface-iresnet-lfw.yaml",
        [f"output_dir={tmp_path / 'magface'}", f"data.root={faces}", "data.aligned=true", "max_steps=150",
         "eval_every=150", "save_every=50", "trackers=[]", "resume=latest", "data.detector_weights=null"]).to_dict()
    assert ours == published


def test_ablation_changes_one_factor_at_a_time_and_fills_every_column(small_run, shared):
    """One factor at a time from the run's recipe (two other label sources, no CFP, the other trunk, the last stage
    tuned, the labels alone, the pairs alone), the run's own network first, each judged on the validation people and on
    dev."""
    from hf_fiqa.recipes.sdd_fiqa import SDDFIQARecipe

    out, _, _ = small_run
    config = small_config(shared, out)
    config.ablation = True
    text = SDDFIQARecipe(config).run()["ablation"]
    lines = [line for line in text.splitlines() if line.startswith("|")]
    header, rows = lines[0], lines[2:]
    assert len(rows) == 8 and "(the run's) | frozen | both | yes | labels+pairs" in rows[0]
    mfn, pairs = " mobilefacenet ", " labels+pairs "
    assert [line.split("|")[1:6] for line in rows[1:]] == [
        [mfn, " frozen ", " dlib ", " yes ", pairs], [mfn, " frozen ", mfn, " yes ", pairs],
        [mfn, " frozen ", " both ", " no ", pairs], [" dlib ", " frozen ", " both ", " yes ", pairs],
        [mfn, " last stage tuned ", " both ", " yes ", pairs], [mfn, " frozen ", " both ", " yes ", " labels "],
        [mfn, " frozen ", " both ", " yes ", " pairs "]]
    assert {line.count("|") for line in rows} == {header.count("|")}  # no cell missing
    assert all(line.count("%") == 8 for line in rows)  # 4 validation + 4 dev gains
