"""RecipeConfig (``hf-fiqa sdd-fiqa``): the run size fills what the caller left open and never overrides a value."""

from __future__ import annotations

from hf_fiqa.recipes.sdd_fiqa import FULL_SIZES, QUICK_SIZES, RecipeConfig


def _sizes(config: RecipeConfig) -> dict:
    return {name: getattr(config, name) for name in QUICK_SIZES}


def test_run_size_fills_fields_left_open():
    assert _sizes(RecipeConfig(shared="s", output="o")) == QUICK_SIZES
    assert _sizes(RecipeConfig(shared="s", output="o", quick=False)) == FULL_SIZES
    for name, quick in QUICK_SIZES.items():  # the full run does more, never less (None: every photo)
        assert FULL_SIZES[name] is None or FULL_SIZES[name] >= quick
    assert _sizes(RecipeConfig(shared="s", output="o", limit=48)) == QUICK_SIZES  # smoke runs: same sizes


def test_explicit_values_are_kept_in_both_run_sizes():
    for quick in (True, False):
        config = RecipeConfig(shared="s", output="o", quick=quick, photos_per_identity=2, copies_per_face=1,
                              fit_epochs=1, magface_steps=4)
        assert _sizes(config) == {"photos_per_identity": 2, "copies_per_face": 1, "fit_epochs": 1, "magface_steps": 4}
    assert RecipeConfig(shared="s", output="o", photos_per_identity=0).photos_per_identity is None  # 0: every photo
    partial = RecipeConfig(shared="s", output="o", quick=False, fit_epochs=2)
    assert _sizes(partial) == {**FULL_SIZES, "fit_epochs": 2}


def test_unknown_trunk_or_label_source_is_refused_with_the_choices():
    import pytest

    with pytest.raises(ValueError, match="trunk.*mobilefacenet"):
        RecipeConfig(shared="s", output="o", trunk="resnet50")
    with pytest.raises(ValueError, match="labels_from.*both"):
        RecipeConfig(shared="s", output="o", labels_from="arcface")


def test_the_objective_follows_the_trunk_unless_given():
    import pytest

    assert RecipeConfig(shared="s", output="o").objective == "labels+pairs"  # a recognizer trunk: labels and pairs
    assert RecipeConfig(shared="s", output="o", trunk="vit").objective == "labels"  # the ViT fits labels only
    assert RecipeConfig(shared="s", output="o", objective="labels").objective == "labels"
    with pytest.raises(ValueError, match="objective"):
        RecipeConfig(shared="s", output="o", trunk="vit", objective="labels+pairs")
    assert RecipeConfig(shared="s", output="o", objective="pairs").objective == "pairs"
    with pytest.raises(ValueError, match="objective"):
        RecipeConfig(shared="s", output="o", trunk="vit", objective="pairs")
    with pytest.raises(ValueError, match="objective"):
        RecipeConfig(shared="s", output="o", objective="labels+magnitude")


def test_a_run_folder_made_from_other_photos_is_refused(tmp_path):
    """Finished stages are skipped by their outputs, so a folder made with another photo list must not be reused
    silently: the quick run's faces are not the full run's."""
    import json

    import pytest

    from hf_fiqa.recipes.sdd_fiqa import SDDFIQARecipe

    data = tmp_path / "shared" / "data" / "lfw"
    data.mkdir(parents=True)
    (data / "labels.csv").write_text("path,identity\n" + "".join(f"{i}.jpg,a\n{i}.jpg,b\n" for i in range(6)))
    out = tmp_path / "run"
    (out / "faces-lfw").mkdir(parents=True)
    (out / "faces-lfw" / "done.json").write_text(json.dumps({"labels": str(data / "labels.csv")}))  # every photo
    recipe = SDDFIQARecipe(RecipeConfig(shared=tmp_path / "shared", output=out, photos_per_identity=4))
    with pytest.raises(ValueError, match="another --output"):
        recipe.stage_faces("lfw", "lfw")
    listed = (out / "lists" / "lfw-4-per-identity-firstall.csv").read_text().splitlines()
    assert len(listed) == 1 + 8  # 4 photos of each of the two people


def test_saved_face_paths_open_from_anywhere(tmp_path):
    """A dataset's labels.csv names photos relative to itself; later stages (LightQNet, the components) reopen the
    photos from another working directory."""
    import json

    import numpy as np

    from hf_fiqa.recipes.faces import FaceSet

    (tmp_path / "pass").mkdir()
    (tmp_path / "pass" / "done.json").write_text(json.dumps({"labels": str(tmp_path / "data" / "labels.csv")}))
    faces = FaceSet(tmp_path / "pass", np.array(["images/a.jpg", "/abs/b.jpg"]), np.array(["x", "y"]),
                    np.ones(2, bool), np.zeros((2, 4)), np.zeros((2, 4)), np.zeros((2, 5, 2)), np.ones(2))
    assert faces.photo_paths() == [str(tmp_path / "data" / "images" / "a.jpg"), "/abs/b.jpg"]
    assert faces.photo_paths(np.array([1])) == ["/abs/b.jpg"]
