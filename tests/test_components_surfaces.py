"""The quality components where users meet them: pipeline records, ``score --components`` columns, video series,
the acceptance rule, and bad inputs end to end (real photos from ../shared, a tiny random quality model)."""

from __future__ import annotations

import csv
import pickle

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import pipeline

import hf_fiqa
from hf_fiqa.cli import main as cli_main
from hf_fiqa.components import COMPONENT_NAMES, AcceptanceRule, PhotoComponents
from hf_fiqa.components.context import NEEDS_DENSE
from hf_fiqa.models.face_mesh import FaceMeshConfig, FaceMeshLandmarker, FaceMeshModel
from hf_fiqa.pipelines.face_quality import FaceQualityAnalyzer
from hf_fiqa.pipelines.video import plot_quality_series, score_video
from hf_fiqa.scorers import load_scorer
from media import write_video

hf_fiqa.register()  # the "face-image-quality" task for transformers.pipeline


@pytest.fixture(scope="module")
def crowd(shared):
    return shared / "data" / "deepface-pairs" / "selfie-many-people.jpg"


@pytest.fixture(scope="module")
def pipe(tiny_maniqa_dir, yunet_weights):
    return pipeline("face-image-quality", model=str(tiny_maniqa_dir), trust_remote_code=True, device="cpu",
                    detector_weights=str(yunet_weights), components=True, acceptance="default")


def _tiny_landmarker() -> FaceMeshLandmarker:
    torch.manual_seed(0)
    return FaceMeshLandmarker(FaceMeshModel(FaceMeshConfig.tiny(num_landmarks=468)).eval())


def test_pipeline_records_carry_components_and_name_the_faces_cut_by_the_edge(pipe, crowd):
    """selfie-many-people.jpg: YuNet finds 6 faces, two of them cut by the photo's right edge. The one cut most
    (bottom right, most of it outside) is named in words and rejected by the default rule; eyes open needs a
    face mesh, so it is unchecked. (The other, cut less, sits at 71 from the 5 landmarks alone: YuNet places
    its eyes inside the photo.)"""
    record = pipe(str(crowd))
    assert record["error"] is None and len(record["faces"]) == 6
    for face in record["faces"]:
        assert list(face["components"]) == list(COMPONENT_NAMES)
        for value in face["components"].values():
            assert (value["component"] is None) == (value["reason"] is not None)
        assert face["components"]["eyes_open"]["reason"] == NEEDS_DENSE
        assert "eyes_open" in face["unchecked"] and "head_pose_pitch" in face["unchecked"]
    cut = [f for f in record["faces"] if f["box"][2] >= 599]
    assert len(cut) == 2
    for face in [f for f in cut if f["box"][3] >= 600]:
        assert face["components"]["rightward_crop"]["component"] < 50
        assert any("right edge" in c for c in face["concerns"])
        assert face["acceptable"] is False and any(f.startswith("rightward_crop") for f in face["failed"])
    inside = [f for f in record["faces"] if f["box"][2] < 560]
    assert all(f["components"]["rightward_crop"]["component"] == 100 for f in inside)


def test_the_acceptance_rule_parses_and_rejects_bad_rules():
    rule = AcceptanceRule.parse("quality>=60, eyes_open>=40")
    assert rule.min_quality == 60 and dict(rule.minima) == {"eyes_open": 40}
    assert AcceptanceRule.parse("default") == AcceptanceRule()
    for bad in ("eyes>=3", "quality=>5", "", "quality>=abc"):
        with pytest.raises(ValueError, match="acceptance rule"):
            AcceptanceRule.parse(bad)


def test_the_face_mesh_runs_where_the_photo_is_decoded(tiny_maniqa_dir, yunet_weights, shared):
    """With a face-mesh model the stage pickles (DataLoader workers get it) and gives the same records in a
    worker process as in this one; a random tiny mesh's points are measured or refused with a reason, never a
    crash."""
    scorer = load_scorer(str(tiny_maniqa_dir), device="cpu")
    analyzer = FaceQualityAnalyzer(scorer, detector_weights=str(yunet_weights), components=True,
                                   face_mesh=_tiny_landmarker())
    stage = pickle.loads(pickle.dumps(analyzer.components))
    assert isinstance(stage, PhotoComponents) and stage.landmarker is not None
    photos = [str(shared / "data" / "deepface-pairs" / name) for name in ("couple.jpg", "img1.jpg")]
    here = list(analyzer.iter_records(photos, workers=0))
    there = list(analyzer.iter_records(photos, workers=1))
    for a, b in zip([f for r in here for f in r["faces"]], [f for r in there for f in r["faces"]], strict=True):
        for name in COMPONENT_NAMES:
            x, y = a["components"][name], b["components"][name]
            assert (x["reason"], x["note"]) == (y["reason"], y["note"]), name
            assert (x["native"] is None) == (y["native"] is None), name
            if x["native"] is not None:
                assert x["native"] == pytest.approx(y["native"], rel=1e-6, abs=1e-9), name
    eyes = [f["components"]["eyes_open"] for r in here for f in r["faces"]]
    assert eyes and all((e["component"] is None) == (e["reason"] is not None) for e in eyes)


def test_score_components_columns_and_bad_inputs_end_to_end(tiny_maniqa_dir, yunet_weights, crowd, tmp_path, capsys):
    """Every face row gets every component; a grey photo is a no_face row, a truncated file an error row naming
    it, a tiny face and a face at the border get values or reasons, and the run exits 1 for the failed file."""
    grey = tmp_path / "grey.png"
    Image.new("RGB", (200, 160), (128, 128, 128)).save(grey)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(crowd.read_bytes()[:300])
    tiny = tmp_path / "tiny.png"
    Image.open(crowd).convert("RGB").resize((90, 90)).save(tiny)
    out = tmp_path / "rows.csv"
    code = cli_main(["score", str(crowd), str(grey), str(broken), str(tiny), "--model", str(tiny_maniqa_dir),
                     "--detector-weights", str(yunet_weights), "--components", "--acceptable",
                     "quality>=0,leftward_crop>=50,rightward_crop>=50", "--output", str(out), "--no-progress"])
    assert code == 1
    rows = list(csv.DictReader(out.open()))
    header = list(rows[0])
    for name in COMPONENT_NAMES:
        assert name in header and f"{name}_native" in header
    assert {"component_reasons", "concerns", "acceptable", "failed_checks"} <= set(header)
    by_status = {}
    for row in rows:
        by_status.setdefault(row["status"], []).append(row)
    assert [r["path"] for r in by_status["no_face"]] == [str(grey)]
    assert [r["path"] for r in by_status["error"]] == [str(broken)] and "broken.jpg" in by_status["error"][0]["reason"]
    faces = by_status["ok"]
    assert len([r for r in faces if r["path"] == str(crowd)]) == 6
    for row in faces:
        for name in COMPONENT_NAMES:
            assert (row[name] == "") == (f"{name}: " in row["component_reasons"]), (name, row)
        assert "eyes_open: needs dense landmarks" in row["component_reasons"]
    cut = [r for r in faces if r["path"] == str(crowd) and float(r["x2"]) >= 599 and float(r["y2"]) >= 600]
    assert cut and all(r["acceptable"] == "False" and "rightward_crop" in r["failed_checks"] for r in cut)


def test_a_malformed_rule_fails_before_any_model_loads(tmp_path, crowd, capsys):
    code = cli_main(["score", str(crowd), "--model", str(tmp_path / "no-such-model"), "--acceptable", "eyes>=3"])
    assert code == 2
    assert "--acceptable" in capsys.readouterr().err


def test_video_gives_a_series_per_component(tiny_maniqa_dir, yunet_weights, shared, tmp_path):
    photo = np.asarray(Image.open(shared / "data" / "deepface-pairs" / "img1.jpg").convert("RGB").resize((320, 240)))
    frames = []
    for i in range(6):
        canvas = np.full((240, 400, 3), 40, dtype=np.uint8)
        canvas[:, 16 * i: 16 * i + 320] = photo  # the face drifts towards the right edge
        frames.append(canvas)
    video = write_video(tmp_path / "drift.mp4", frames)
    analyzer = FaceQualityAnalyzer(load_scorer(str(tiny_maniqa_dir), device="cpu"),
                                   detector_weights=str(yunet_weights), components=True)
    result = score_video(video, analyzer)
    assert result.error is None
    series = result.component_series()
    assert list(series) == list(COMPONENT_NAMES)
    assert all(len(v) == len(result.frames) for v in series.values())
    assert np.isfinite(series["head_pose_yaw"]).all() and np.isnan(series["eyes_open"]).all()
    row = result.frames[0].row()
    assert "head_pose_yaw" in row and "eyes_open: needs dense landmarks" in row["component_reasons"]
    assert plot_quality_series(result, tmp_path / "series.png").stat().st_size > 1000


def test_the_standalone_pipeline_refuses_components_instead_of_ignoring_them(tiny_maniqa_dir):
    from hf_fiqa.pipelines.standalone import StandaloneFaceQualityPipeline
    from transformers import AutoImageProcessor, AutoModel

    model = AutoModel.from_pretrained(str(tiny_maniqa_dir), trust_remote_code=True)
    processor = AutoImageProcessor.from_pretrained(str(tiny_maniqa_dir), trust_remote_code=True)
    with pytest.raises(ValueError, match="need the hf-fiqa package"):
        StandaloneFaceQualityPipeline(model=model, image_processor=processor, components=True)
