"""The face-image-quality pipeline, video scoring and the score/video CLI on real photos from ../shared."""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pytest
from PIL import Image
from transformers import pipeline

import hf_fiqa
from hf_fiqa.cli import main as cli_main
from media import write_video
from hf_fiqa.pipelines.video import MainFaceTracker, plot_quality_series, score_video
from hf_fiqa.faces.types import DetectedFace

hf_fiqa.register()  # the "face-image-quality" task for transformers.pipeline


@pytest.fixture(scope="module")
def pipe(tiny_maniqa_dir, yunet_weights):
    return pipeline("face-image-quality", model=str(tiny_maniqa_dir), trust_remote_code=True, device="cpu",
                    detector_weights=str(yunet_weights))


@pytest.fixture(scope="module")
def photos(shared):
    root = shared / "data" / "deepface-pairs"
    return {"single": root / "img1.jpg", "couple": root / "couple.jpg", "crowd": root / "selfie-many-people.jpg",
            "csv": root / "master.csv"}


def _no_face_image() -> Image.Image:
    y, x = np.mgrid[0:240, 0:320]
    return Image.fromarray(np.stack([x % 256, y % 256, (x + y) % 256], -1).astype(np.uint8))


def test_single_photo_scores_its_face(pipe, photos):
    record = pipe(str(photos["single"]))
    assert record["error"] is None and record["reason"] is None
    assert len(record["faces"]) >= 1
    face = record["faces"][0]
    x1, y1, x2, y2 = face["box"]
    assert 0 <= x1 < x2 and 0 <= y1 < y2 and len(face["landmarks"]) == 5
    assert math.isfinite(face["quality"]) and 0 < face["detection_score"] <= 1


def test_multi_face_photos_sorted_by_quality(pipe, photos):
    couple, crowd = pipe([str(photos["couple"]), str(photos["crowd"])])
    assert len(couple["faces"]) >= 2 and len(crowd["faces"]) >= 3
    qualities = [f["quality"] for f in crowd["faces"]]
    assert qualities == sorted(qualities, reverse=True)
    assert sorted(f["face_index"] for f in crowd["faces"]) == list(range(len(crowd["faces"])))


def test_largest_face_only_and_min_face_size(pipe, photos):
    record = pipe(str(photos["crowd"]), largest_face_only=True)
    assert len(record["faces"]) == 1
    everything = pipe(str(photos["crowd"]))
    largest = max(everything["faces"], key=lambda f: (f["box"][2] - f["box"][0]) * (f["box"][3] - f["box"][1]))
    assert record["faces"][0]["box"] == largest["box"]
    record = pipe(str(photos["crowd"]), min_face_size=100000)
    assert record["faces"] == [] and "at least" in record["reason"]


def test_no_face_is_an_empty_list_with_a_reason(pipe):
    record = pipe(_no_face_image())
    assert record["faces"] == [] and record["reason"] == "no face detected" and record["error"] is None


def test_bad_items_in_a_list_do_not_stop_the_others(pipe, photos, tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    truncated = tmp_path / "truncated.jpg"
    data = photos["single"].read_bytes()
    truncated.write_bytes(data[: len(data) // 3])
    records = pipe([str(empty), str(photos["csv"]), str(truncated), str(photos["single"]), "missing.png"])
    assert [r["error"] is not None for r in records] == [True, True, True, False, True]
    assert "empty.jpg" in records[0]["error"] and "master.csv" in records[1]["error"]
    assert "truncated.jpg" in records[2]["error"] and "missing.png" in records[4]["error"]
    assert len(records[3]["faces"]) >= 1


def test_numpy_and_pil_inputs_agree_with_paths(pipe, photos):
    path = str(photos["single"])
    image = Image.open(path).convert("RGB")
    by_path, by_pil, by_array = pipe([path, image, np.asarray(image)])
    assert by_path["faces"][0]["quality"] == by_pil["faces"][0]["quality"] == by_array["faces"][0]["quality"]


def test_exif_rotated_photo_finds_the_face(pipe, photos, tmp_path):
    image = Image.open(photos["single"]).convert("RGB").rotate(90, expand=True)  # stored sideways
    exif = Image.Exif()
    exif[0x0112] = 6  # viewer rotates 90 CW: upright again
    path = tmp_path / "sideways.jpg"
    image.save(path, exif=exif.tobytes())
    assert len(pipe(str(path))["faces"]) >= 1


def test_aligned_mode_gives_one_score_per_input(pipe, tmp_path):
    crops = [Image.fromarray(np.random.default_rng(i).integers(0, 256, (112, 112, 3), dtype=np.uint8)) for i in range(3)]
    bad = tmp_path / "bad.png"
    bad.write_text("nope")
    records = pipe(crops + [str(bad)], aligned=True)
    assert [r["quality"] is not None for r in records] == [True, True, True, False]
    assert "bad.png" in records[3]["error"]


def test_scores_are_deterministic(pipe, photos):
    a = pipe(str(photos["couple"]))
    b = pipe(str(photos["couple"]))
    assert a == b


# -- video ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def video_file(shared, tmp_path_factory):
    """12 frames: a real face photo drifting sideways, with 3 face-less frames in the middle."""
    photo = np.asarray(Image.open(shared / "data" / "deepface-pairs" / "img1.jpg").convert("RGB").resize((320, 240)))
    frames = []
    for i in range(12):
        canvas = np.full((240, 352, 3), 40, dtype=np.uint8)
        if not 5 <= i <= 7:
            canvas[:, 2 * i: 2 * i + 320] = photo
        frames.append(canvas)
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    write_video(path, frames)
    return path


def test_video_scores_every_sampled_frame(pipe, video_file, tmp_path):
    result = score_video(video_file, pipe.analyzer, every_n=2)
    assert result.error is None and result.frames_decoded == 12
    assert [f.frame_index for f in result.frames] == [0, 2, 4, 6, 8, 10]
    missing = [f.frame_index for f in result.frames if f.quality is None]
    assert missing == [6]  # the face-less frame
    best = result.best_frames(2)
    assert len(best) == 2 and best[0].quality >= best[1].quality
    png = plot_quality_series(result, tmp_path / "series.png")
    assert png.stat().st_size > 1000


def test_truncated_video_returns_what_was_scored(pipe, video_file, tmp_path):
    data = video_file.read_bytes()
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(data[: len(data) // 2])
    result = score_video(broken, pipe.analyzer)
    assert result.error is not None and "broken.mp4" in result.error
    text = tmp_path / "notavideo.mp4"
    text.write_text("hello")
    result = score_video(text, pipe.analyzer)
    assert result.frames == [] and "notavideo.mp4" in result.error


def test_tracker_follows_overlap_and_reacquires():
    def face(x):
        return DetectedFace(box=np.array([x, 0, x + 10, 10], np.float32), landmarks=np.zeros((5, 2), np.float32), score=0.9)

    tracker = MainFaceTracker(max_lost=1)
    big = DetectedFace(box=np.array([50, 0, 80, 30], np.float32), landmarks=np.zeros((5, 2), np.float32), score=0.9)
    assert tracker.update([face(0), big]) is big  # starts on the largest
    moved = DetectedFace(box=np.array([52, 0, 82, 30], np.float32), landmarks=np.zeros((5, 2), np.float32), score=0.8)
    assert tracker.update([face(0), moved]) is moved  # follows by IoU, not size
    assert tracker.update([face(0)]) is None  # lost once: tolerated
    assert tracker.update([face(0)]).box[0] == 0  # lost too long: restarts


# -- CLI ------------------------------------------------------------------------------------------------------
def test_score_cli_writes_rows_and_exit_code(tiny_maniqa_dir, yunet_weights, photos, tmp_path):
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "a.jpg").write_bytes(photos["couple"].read_bytes())
    _no_face_image().save(folder / "blank.png")
    out = tmp_path / "scores.csv"
    args = ["score", str(folder), "--model", str(tiny_maniqa_dir), "--detector-weights", str(yunet_weights),
            "--output", str(out), "--quiet"]
    assert cli_main(args) == 0
    rows = list(csv.DictReader(out.open()))
    statuses = sorted({r["status"] for r in rows})
    assert statuses == ["no_face", "ok"]
    assert sum(r["status"] == "ok" for r in rows) >= 2
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    jsonl = tmp_path / "scores.jsonl"
    assert cli_main(args[:-3] + ["--output", str(jsonl), "--quiet"]) == 1  # one unreadable input
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert any(line["status"] == "error" and "broken.jpg" in line["reason"] for line in lines)
    assert any(line["status"] == "ok" for line in lines)  # the others were still written


def test_score_cli_with_a_baseline(yunet_weights, photos, tmp_path):
    out = tmp_path / "s.csv"
    assert cli_main(["score", str(photos["single"]), "--model", "sharpness", "--detector-weights", str(yunet_weights),
                     "--output", str(out), "--quiet"]) == 0
    rows = list(csv.DictReader(out.open()))
    assert rows and float(rows[0]["quality"]) > 0


def test_video_cli(tiny_maniqa_dir, yunet_weights, video_file, tmp_path):
    out, png = tmp_path / "v.csv", tmp_path / "v.png"
    code = cli_main(["video", str(video_file), "--model", str(tiny_maniqa_dir), "--detector-weights",
                     str(yunet_weights), "--every-n", "3", "--output", str(out), "--plot", str(png), "--quiet"])
    assert code == 0 and png.exists()
    assert [int(r["frame_index"]) for r in csv.DictReader(out.open())] == [0, 3, 6, 9]


def test_evaluate_fiqa_scores_dataset_photos_with_methods(shared, yunet_weights, tiny_maniqa_dir, tmp_path):
    """evaluate-fiqa --method: qualities of the photos behind the rows, aligned with the embeddings."""
    import pandas as pd

    from hf_fiqa.faces.detection import YuNetDetector
    from hf_fiqa.pipelines.dataset_quality import score_largest_faces
    from hf_fiqa.scorers import load_scorer

    labels = pd.read_csv(shared / "data" / "celeba-wild-ids" / "labels.csv").head(24)
    rows = labels.assign(row=range(len(labels)))
    rows.loc[len(rows)] = {"path": "images/missing.jpg", "identity": rows["identity"].iloc[0], "row": len(rows)}
    rows.to_csv(tmp_path / "rows.csv", index=False)
    np.save(tmp_path / "emb.npy", np.random.default_rng(0).normal(size=(len(rows), 8)).astype(np.float32))
    out = tmp_path / "report"
    code = cli_main(["evaluate-fiqa", "--embeddings", str(tmp_path / "emb.npy"), "--identities", str(tmp_path / "rows.csv"),
                     "--images-root", str(shared / "data" / "celeba-wild-ids"), "--method", "sharpness",
                     "--method", f"maniqa={tiny_maniqa_dir}", "--detector-weights", str(yunet_weights),
                     "--fnmr", "0.2", "--fmr", "0.1", "--output-dir", str(out)])
    assert code == 0
    table = json.loads((out / "pauc.json").read_text())
    assert {"sharpness", "maniqa"} <= {row["method"] for row in table["results"]}
    assert table["nan_qualities"] == {"sharpness": 1, "maniqa": 1}  # the missing photo
    # The same qualities as scoring the photos directly; the missing photo is NaN.
    paths = [str(shared / "data" / "celeba-wild-ids" / p) for p in rows["path"]]
    direct = score_largest_faces(paths, {"sharpness": load_scorer("sharpness")}, YuNetDetector(yunet_weights),
                                 progress=False)["sharpness"]
    assert np.isnan(direct[-1]) and np.isfinite(direct[:-1]).all()


def test_draw_faces_marks_every_face(pipe, photos):
    from hf_fiqa.pipelines.annotate import draw_faces

    image = Image.open(photos["couple"]).convert("RGB")
    record = pipe(image)
    drawn = np.asarray(draw_faces(image, record)).astype(int)
    changed = np.abs(drawn - np.asarray(image).astype(int)).sum(-1) > 0
    for face in record["faces"]:
        x1, y1, x2, y2 = (int(round(v)) for v in face["box"])
        assert changed[max(y1, 0):y2, max(x1, 0):x2].any()  # the box outline was drawn
    assert draw_faces(image, {"faces": [], "reason": "no face detected"}).size == image.size


def test_scores_come_back_in_the_training_label_units(tiny_maniqa_dir):
    from hf_fiqa.models.maniqa import MANIQAForImageQualityAssessment, MANIQAImageProcessor
    from hf_fiqa.scorers import ModelQualityScorer

    crops = [np.random.default_rng(i).integers(0, 256, (32, 32, 3), dtype=np.uint8) for i in range(3)]
    model = MANIQAForImageQualityAssessment.from_pretrained(tiny_maniqa_dir)
    scorer = ModelQualityScorer(model, MANIQAImageProcessor.from_pretrained(tiny_maniqa_dir))
    raw = scorer.score_images(crops)
    model.config.label_range = [0.0, 100.0]  # e.g. SDD-FIQA pseudo-labels
    np.testing.assert_allclose(scorer.score_images(crops), raw * 100.0)


def test_call_options_do_not_leak_into_later_calls(pipe, photos):
    before = pipe(str(photos["crowd"]))
    assert len(pipe(str(photos["crowd"]), largest_face_only=True, batch_size=1)["faces"]) == 1
    assert pipe(str(photos["crowd"])) == before
    assert pipe.analyzer.scorer.batch_size != 1
