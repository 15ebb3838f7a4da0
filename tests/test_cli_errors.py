"""Every command against careless and hostile input: checked before work, nothing lost, nothing silent."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from media import write_video
from hf_fiqa.cli import main as cli_main
from hf_fiqa.io import ImageReadError, load_image, scan_images

# -- helpers --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def face_photo(shared):
    return shared / "data" / "deepface-pairs" / "img1.jpg"


@pytest.fixture(scope="module")
def nan_maniqa_dir(tmp_path_factory):
    """A tiny MANIQA whose weights are NaN: every score it gives is NaN."""
    from hf_fiqa.models.maniqa import MANIQAConfig, MANIQAForImageQualityAssessment, MANIQAImageProcessor

    model = MANIQAForImageQualityAssessment(MANIQAConfig.tiny()).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.fill_(float("nan"))
    folder = tmp_path_factory.mktemp("nan-maniqa")
    model.save_pretrained(folder)
    MANIQAImageProcessor(crop_size=model.config.image_size, policy="resize").save_pretrained(folder)
    return folder


def tiny_recognizer(folder: Path, nan: bool = False) -> Path:
    from hf_fiqa.models.iresnet import IResNetImageProcessor
    from hf_fiqa.models.mobilefacenet import MobileFaceNetConfig, MobileFaceNetModel

    torch.manual_seed(0)
    model = MobileFaceNetModel(MobileFaceNetConfig(embedding_size=16)).eval()
    if nan:
        with torch.no_grad():
            for param in model.parameters():
                param.fill_(float("nan"))
    model.save_pretrained(folder)
    IResNetImageProcessor().save_pretrained(folder)
    return folder


def score_args(paths, model, yunet, *extra):
    return ["score", *map(str, paths), "--model", str(model), "--detector-weights", str(yunet), "--device", "cpu",
            "--no-progress", *extra]




def face_frames(photo: Path, n: int) -> list[np.ndarray]:
    base = np.asarray(Image.open(photo).convert("RGB").resize((160, 120)))
    return [np.roll(base, 2 * i, axis=1) for i in range(n)]


# -- 1. outputs checked before work, written atomically ----------------------------------------------------------
def test_score_refuses_bad_outputs_before_any_work(tmp_path, face_photo, monkeypatch, capsys):
    import hf_fiqa.scorers as scorers

    def no_work(*args, **kwargs):
        raise AssertionError("the model was loaded although the output is unusable")

    monkeypatch.setattr(scorers, "load_scorer", no_work)
    photo = tmp_path / "v.jpg"
    photo.write_bytes(face_photo.read_bytes())
    before = photo.read_bytes()
    assert cli_main(["score", str(photo), "--model", "sharpness", "--output", str(photo)]) == 2
    assert "also an input" in capsys.readouterr().err and photo.read_bytes() == before
    assert cli_main(["score", str(photo), "--model", "sharpness", "--output", str(tmp_path / "o.xlsx")]) == 2
    err = capsys.readouterr().err
    assert ".xlsx" in err and ".csv" in err and ".jsonl" in err
    existing = tmp_path / "old.csv"
    existing.write_text("keep me")
    assert cli_main(["score", str(photo), "--model", "sharpness", "--output", str(existing)]) == 2
    assert "--overwrite" in capsys.readouterr().err and existing.read_text() == "keep me"
    assert cli_main(["score", str(photo), "--model", "sharpness", "--output", str(tmp_path / "o.csv"),
                     "--histogram", str(tmp_path / "h.gif")]) == 2
    assert "--histogram" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.csv", "v.jpg"]  # nothing else written


def test_outputs_go_to_new_folders_atomically_and_overwrite_on_request(tmp_path, face_photo, tiny_maniqa_dir,
                                                                      yunet_weights, capsys):
    out = tmp_path / "missing" / "deeper" / "scores.csv"
    hist = tmp_path / "plots" / "q.png"
    assert cli_main(score_args([face_photo], tiny_maniqa_dir, yunet_weights, "--output", str(out),
                               "--histogram", str(hist))) == 0
    rows = list(csv.DictReader(out.open()))
    assert rows and rows[0]["status"] == "ok"
    assert hist.read_bytes()[:4] == b"\x89PNG"
    err = capsys.readouterr().err
    assert "1 faces scored" in err or "faces scored" in err
    assert "p5" in err and "p50" in err and "p95" in err
    assert not [p for p in out.parent.iterdir() if p.name != "scores.csv"]  # no temp files left
    assert cli_main(score_args([face_photo], tiny_maniqa_dir, yunet_weights, "--output", str(out))) == 2
    assert cli_main(score_args([face_photo], tiny_maniqa_dir, yunet_weights, "--output", str(out),
                               "--overwrite", "--quiet")) == 0  # --quiet: the old name of --no-progress


def test_video_output_folders_checked_before_scoring(tmp_path, face_photo, tiny_maniqa_dir, yunet_weights, capsys):
    video = write_video(tmp_path / "clip.mp4", face_frames(face_photo, 6))
    out, plot = tmp_path / "new" / "v.csv", tmp_path / "other" / "v.png"
    code = cli_main(["video", str(video), "--model", str(tiny_maniqa_dir), "--detector-weights", str(yunet_weights),
                     "--device", "cpu", "--output", str(out), "--plot", str(plot), "--no-progress"])
    assert code == 0 and plot.read_bytes()[:4] == b"\x89PNG"
    assert len(list(csv.DictReader(out.open()))) == 6
    for bad in (["--output", str(video.with_suffix(".xlsx"))], ["--plot", str(tmp_path / "p.bmp")],
                ["--output", str(video)], ["--output", str(out)]):
        assert cli_main(["video", str(video), "--model", "/nonexistent/model", *bad]) == 2
        assert "nonexistent" not in capsys.readouterr().err  # refused before the model is even looked at


# -- 2. any path bytes -------------------------------------------------------------------------------------------
@pytest.mark.skipif(sys.platform != "linux", reason="file names are bytes on Linux")
def test_non_utf8_file_names_round_trip(tmp_path, face_photo, tiny_maniqa_dir, yunet_weights):
    folder = tmp_path / "photos"
    folder.mkdir()
    raw = os.fsencode(folder) + b"/caf\xe9.jpg"
    with open(raw, "wb") as fh:
        fh.write(face_photo.read_bytes())
    (folder / "zz.jpg").write_bytes(face_photo.read_bytes())
    out_csv, out_jsonl = tmp_path / "s.csv", tmp_path / "s.jsonl"
    assert cli_main(score_args([folder], tiny_maniqa_dir, yunet_weights, "--output", str(out_csv))) == 0
    assert cli_main(score_args([folder], tiny_maniqa_dir, yunet_weights, "--output", str(out_jsonl))) == 0
    with open(out_csv, newline="", encoding="utf-8", errors="surrogateescape") as fh:
        paths = {r["path"] for r in csv.DictReader(fh) if r["status"] == "ok"}
    assert raw in {os.fsencode(p) for p in paths} and len(paths) == 2
    lines = [json.loads(line) for line in out_jsonl.read_text().splitlines()]
    assert raw in {os.fsencode(r["path"]) for r in lines}

    model = tiny_recognizer(tmp_path / "rec")
    for fmt in ("npy", "parquet"):
        out = tmp_path / f"emb-{fmt}"
        args = ["embed", str(folder), "--model", str(model), "--output", str(out), "--aligned", "--format", fmt,
                "--device", "cpu", "--no-progress"]
        assert cli_main(args) == 0
        from hf_fiqa.embedding.store import read_rows

        table = read_rows(out / ("rows.csv" if fmt == "npy" else "embeddings.parquet"), required=("row", "path"))
        assert [os.fsencode(p) for p in table["path"]] == [b"caf\xe9.jpg", b"zz.jpg"]
        assert table["ok"].all()


# -- 3. non-finite scores ------------------------------------------------------------------------------------------
def test_nan_scores_are_errors_naming_input_and_model(tmp_path, face_photo, nan_maniqa_dir, yunet_weights, capsys):
    out = tmp_path / "s.jsonl"
    assert cli_main(score_args([face_photo], nan_maniqa_dir, yunet_weights, "--output", str(out))) == 1
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows and all(r["status"] == "error" for r in rows)
    assert "non-finite" in rows[0]["reason"] and str(face_photo) in rows[0]["reason"]
    assert str(nan_maniqa_dir) in rows[0]["reason"]
    assert "1 failed" in capsys.readouterr().err

    crops = tmp_path / "crops"
    crops.mkdir()
    Image.fromarray(np.full((112, 112, 3), 120, np.uint8)).save(crops / "a.png")
    model = tiny_recognizer(tmp_path / "nan-rec", nan=True)
    assert cli_main(["embed", str(crops), "--model", str(model), "--output", str(tmp_path / "e"), "--aligned",
                     "--device", "cpu", "--no-progress"]) == 1
    with open(tmp_path / "e" / "rows.csv", newline="") as fh:
        row = next(csv.DictReader(fh))
    assert row["ok"] == "False" and "non-finite embedding" in row["error"] and "a.png" in row["error"]


# -- 4. one rule for numeric arrays -------------------------------------------------------------------------------
def test_one_rule_for_numeric_arrays():
    levels = np.random.default_rng(0).integers(0, 256, (6, 7, 3)).astype(np.uint8)
    expected = np.asarray(load_image(levels))
    as_float = levels.astype(np.float32)
    assert (np.asarray(load_image(as_float)) == expected).all()  # 0..255 floats are 8-bit levels, not white
    assert (np.asarray(load_image(as_float / 255.0)) == expected).all()  # [0, 1] floats are scaled
    assert (np.asarray(load_image(levels.astype(np.uint16) * 257)) == expected).all()  # 16-bit scaled by 65535
    grey = levels[..., 0]
    for image in (Image.fromarray(grey.astype(np.float32), "F"), Image.fromarray(grey.astype(np.float32) / 255, "F"),
                  Image.fromarray(grey.astype(np.uint16) * 257), Image.fromarray(grey.astype(np.int32), "I")):
        assert (np.asarray(load_image(image))[..., 0] == grey).all(), image.mode
    tensor = torch.from_numpy(as_float / 255.0)
    assert (np.asarray(load_image(tensor)) == expected).all()  # HWC
    assert (np.asarray(load_image(tensor.permute(2, 0, 1))) == expected).all()  # CHW
    assert (np.asarray(load_image(tensor.permute(2, 0, 1)[None])) == expected).all()  # 1xCxHxW
    for bad, why in ((as_float - 1, "negative"), (as_float * 2, "above 255"), (as_float * np.nan, "NaN"),
                     (Image.fromarray(grey.astype(np.float32) * 3, "F"), "above 255")):
        with pytest.raises(ImageReadError, match=why):
            load_image(bad)


# -- 5. folder scans report what they skip --------------------------------------------------------------------------
def test_folder_scans_report_every_skipped_entry(tmp_path, face_photo, tiny_maniqa_dir, yunet_weights, monkeypatch):
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    (root / "locked").mkdir()
    (root / "sub" / "a.jpg").write_bytes(face_photo.read_bytes())
    (root / "b.heic").write_bytes(b"\x00\x00\x00\x18ftypheic")
    (root / "sub" / "loop").symlink_to(root)
    (root / "dangling.jpg").symlink_to(tmp_path / "nowhere.jpg")
    real_scandir = os.scandir

    def scandir(path="."):
        if isinstance(path, (str, os.PathLike)) and Path(path) == root / "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    skipped: list = []
    assert scan_images(root, skipped) == [root / "sub" / "a.jpg"]
    reasons = dict(skipped)
    assert "unsupported format" in reasons[str(root / "b.heic")] and ".heic" in reasons[str(root / "b.heic")]
    assert "symlink loop" in reasons[str(root / "sub" / "loop")]
    assert "cannot be read" in reasons[str(root / "locked")]
    assert "broken symlink" in reasons[str(root / "dangling.jpg")]

    out = tmp_path / "s.csv"
    assert cli_main(score_args([root], tiny_maniqa_dir, yunet_weights, "--output", str(out))) == 1
    rows = list(csv.DictReader(out.open()))
    assert {r["path"] for r in rows if r["status"] == "skipped"} == set(reasons)
    assert any(r["status"] == "ok" for r in rows)

    model = tiny_recognizer(tmp_path / "rec")
    assert cli_main(["embed", str(root), "--model", str(model), "--output", str(tmp_path / "e"), "--aligned",
                     "--device", "cpu", "--no-progress"]) == 1
    with open(tmp_path / "e" / "rows.csv", newline="") as fh:
        table = {r["path"]: r for r in csv.DictReader(fh)}
    assert table["b.heic"]["ok"] == "False" and "unsupported format" in table["b.heic"]["error"]
    assert "cannot be read" in table["locked"]["error"] and table["sub/a.jpg"]["ok"] == "True"


# -- 6. truncated videos -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_truncated_video_is_reported_for_every_container(tmp_path, face_photo, tiny_maniqa_dir, yunet_weights, suffix):
    from hf_fiqa.pipelines.video import score_video
    from hf_fiqa.scorers import load_scorer
    from hf_fiqa.pipelines import FaceQualityAnalyzer

    analyzer = FaceQualityAnalyzer(load_scorer(str(tiny_maniqa_dir), device="cpu"), detector_weights=str(yunet_weights))
    full = write_video(tmp_path / f"full{suffix}", face_frames(face_photo, 30))
    complete = score_video(full, analyzer, every_n=5)
    assert complete.error is None and complete.frames_decoded == 30
    if suffix == ".mp4":  # the index (moov) in front, as streaming muxers write it, so a cut file still opens
        full = write_video(tmp_path / "fast.mp4", face_frames(face_photo, 30), movflags="faststart")
    data = full.read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[: int(len(data) * 0.55)])
    result = score_video(cut, analyzer, every_n=5)
    assert result.error is not None and "broke off" in result.error and "cut" in result.error
    assert 0 < result.frames_decoded < 30 and result.frames  # what was scored is kept


# -- 7. tracebacks become messages ---------------------------------------------------------------------------------
@pytest.mark.parametrize("extra", [["--batch-size", "0"], ["--batch-size", "-3"], ["--fps", "0"], ["--fps", "-2"],
                                   ["--every-n", "0"], ["--fps", "nan"]])
def test_bad_numbers_are_usage_errors(extra, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["video", str(tmp_path / "v.mp4"), "--model", "sharpness", *extra])
    assert exit_info.value.code == 2
    assert "expected a positive" in capsys.readouterr().err


def test_bad_device_url_inputs_and_corrupt_checkpoints_are_messages(tmp_path, face_photo, yunet_weights, capsys):
    assert cli_main(["score", str(face_photo), "--model", "sharpness", "--device", "banana"]) == 2
    assert "banana" in capsys.readouterr().err
    assert cli_main(["video", "http://example.com/clip.mp4", "--model", "sharpness"]) == 2
    assert "URLs are not supported" in capsys.readouterr().err
    out = tmp_path / "u.csv"
    assert cli_main(score_args(["https://example.com/a.jpg", face_photo], "sharpness", yunet_weights,
                               "--output", str(out))) == 1
    rows = list(csv.DictReader(out.open()))
    assert "URLs are not supported" in rows[0]["reason"] and rows[-1]["status"] == "ok"
    assert cli_main(["embed", "http://example.com/faces", "--model", "x", "--output", str(tmp_path / "e")]) == 2
    assert "URLs are not supported" in capsys.readouterr().err
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    for family in ("iresnet", "maniqa"):
        assert cli_main(["convert", family, str(bad), str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert "model.safetensors" in err and "Traceback" not in err


def test_pseudo_label_with_only_single_photo_identities_fails(tmp_path, capsys):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "e.npy", rng.normal(size=(6, 8)).astype(np.float32))
    np.save(tmp_path / "i.npy", np.array([f"id{i}" for i in range(6)]))
    out = tmp_path / "labels.parquet"
    code = cli_main(["pseudo-label", "--embeddings", str(tmp_path / "e.npy"), "--identities", str(tmp_path / "i.npy"),
                     "--output", str(out), "--device", "cpu", "--no-progress"])
    assert code != 0 and not out.exists()
    assert "two or more" in capsys.readouterr().err


def test_pseudo_label_and_evaluate_refuse_clobbering(tmp_path, capsys):
    np.save(tmp_path / "e.npy", np.zeros((4, 3), np.float32))
    np.save(tmp_path / "i.npy", np.array(["a", "a", "b", "b"]))
    code = cli_main(["pseudo-label", "--embeddings", str(tmp_path / "e.npy"), "--identities", str(tmp_path / "i.npy"),
                     "--output", str(tmp_path / "e.npy"), "--no-progress"])
    assert code == 2 and "also an input" in capsys.readouterr().err
    code = cli_main(["pseudo-label", "--embeddings", str(tmp_path / "e.npy"), "--identities", str(tmp_path / "i.npy"),
                     "--output", str(tmp_path / "l.parquet"), "--report", str(tmp_path / "i.npy"), "--no-progress"])
    assert code == 2 and "--report" in capsys.readouterr().err


# -- CLI surface -----------------------------------------------------------------------------------------------------
def test_version_and_help_do_not_import_torch(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["--version"])
    assert exit_info.value.code == 0 and "0." in capsys.readouterr().out
    probe = ("import sys, hf_fiqa, hf_fiqa.cli\n"
             "parser = hf_fiqa.cli.build_parser()\n"
             "subs = next(a for a in parser._actions if a.dest == 'command').choices\n"
             "assert len(subs) >= 10, sorted(subs)\n"
             "for sub in subs:\n"
             "    try:\n"
             "        parser.parse_args([sub, '--help'])\n"
             "    except SystemExit:\n"
             "        pass\n"
             "heavy = [m for m in ('torch', 'transformers', 'cv2', 'pandas', 'matplotlib') if m in sys.modules]\n"
             "print('HEAVY', heavy)\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert "HEAVY []" in result.stdout


def test_import_hf_fiqa_is_lazy_and_register_adds_the_task():
    probe = ("import sys, hf_fiqa\n"
             "assert 'torch' not in sys.modules and 'transformers' not in sys.modules\n"
             "from transformers import pipeline\n"
             "from transformers.pipelines import PIPELINE_REGISTRY\n"
             "assert 'face-image-quality' not in PIPELINE_REGISTRY.get_supported_tasks()\n"
             "hf_fiqa.register()\n"
             "assert 'face-image-quality' in PIPELINE_REGISTRY.get_supported_tasks()\n"
             "from transformers import AutoConfig\n"
             "AutoConfig.for_model('maniqa')\n"
             "assert hf_fiqa.MANIQAConfig.model_type == 'maniqa'\n"
             "print('OK')\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.returncode == 0 and "OK" in result.stdout, result.stderr[-2000:]


def test_same_device_and_progress_flags_everywhere():
    from hf_fiqa.cli import build_parser

    parser = build_parser()
    subs = next(a for a in parser._actions if a.dest == "command").choices
    for name in ("score", "video", "embed"):
        options = {o for a in subs[name]._actions for o in a.option_strings}
        assert {"--device", "--dtype", "--no-progress", "--overwrite"} <= options, name
    for name in ("pseudo-label", "evaluate-fiqa"):
        options = {o for a in subs[name]._actions for o in a.option_strings}
        assert "--device" in options and "--overwrite" in options, name
    assert next(a for a in subs["embed"]._actions if a.dest == "device").default is None
    assert next(a for a in subs["pseudo-label"]._actions if a.dest == "device").default is None


def test_progress_moves_per_batch_not_per_chunk(tiny_maniqa_dir, face_photo, yunet_weights):
    from hf_fiqa.pipelines import FaceQualityAnalyzer
    from hf_fiqa.scorers import load_scorer

    scorer = load_scorer(str(tiny_maniqa_dir), device="cpu")
    calls = []
    original = scorer.score

    def counting(faces, batch_size=None):
        calls.append(len(faces))
        return original(faces, batch_size=batch_size)

    scorer.score = counting
    analyzer = FaceQualityAnalyzer(scorer, detector_weights=str(yunet_weights))
    seen = []
    for record in analyzer.iter_records([face_photo] * 5, batch_size=2):
        seen.append(len(calls))  # records come out as soon as their faces are scored
    assert calls and max(calls) <= 2 and seen[0] < len(calls)
