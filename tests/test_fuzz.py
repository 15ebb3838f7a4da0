"""Mutated real photos and videos through ``score``, ``video`` and ``embed``: no traceback, one record per input,
nothing written outside the output paths."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from media import write_video
from hf_fiqa.cli import main as cli_main


def mutations(data: bytes, rng: np.random.Generator, n: int) -> list[bytes]:
    """Truncations, flipped bytes, wrong headers, emptiness and garbage."""
    out = []
    for i in range(n):
        kind = i % 6
        if kind == 0:  # truncated anywhere
            out.append(data[: int(rng.integers(0, len(data)))])
        elif kind == 1:  # a few flipped bytes in the body
            buf = bytearray(data)
            for pos in rng.integers(0, len(buf), size=int(rng.integers(1, 20))):
                buf[pos] ^= 0xFF
            out.append(bytes(buf))
        elif kind == 2:  # flipped bytes in the header
            buf = bytearray(data)
            for pos in rng.integers(0, min(64, len(buf)), size=3):
                buf[pos] = int(rng.integers(0, 256))
            out.append(bytes(buf))
        elif kind == 3:  # another format's magic number
            magic = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"GIF89a", b"RIFF\x00\x00\x00\x00WEBP", b"BM"][i % 5]
            out.append(magic + data[len(magic):])
        elif kind == 4:  # a block of zeros in the middle
            start = int(rng.integers(0, len(data)))
            out.append(data[:start] + b"\x00" * 512 + data[start + 512:])
        else:  # empty or random bytes
            out.append(b"" if i % 12 == 5 else rng.integers(0, 256, size=int(rng.integers(1, 4096)), dtype=np.uint8).tobytes())
    return out


@pytest.fixture(scope="module")
def fuzz_inputs(shared, tmp_path_factory):
    rng = np.random.default_rng(1234)
    sources = sorted((shared / "data" / "celeba-wild-ids").rglob("*.jpg"))[:6] + [
        shared / "data" / "deepface-pairs" / "couple.jpg"]
    root = tmp_path_factory.mktemp("fuzz") / "inputs"
    root.mkdir()
    count = 0
    for k, src in enumerate(sources):
        jpeg = src.read_bytes()
        buffer = io.BytesIO()
        Image.open(src).convert("RGB").resize((160, 160)).save(buffer, format="PNG")
        for suffix, data in ((".jpg", jpeg), (".png", buffer.getvalue())):
            (root / f"orig{k}{suffix}").write_bytes(data)
            for j, mutated in enumerate(mutations(data, rng, 14)):
                (root / f"m{k}_{j}{suffix}").write_bytes(mutated)
                count += 1
    return root


@pytest.fixture(scope="module")
def fuzz_videos(shared, tmp_path_factory):
    rng = np.random.default_rng(99)
    folder = tmp_path_factory.mktemp("fuzz-video") / "videos"
    folder.mkdir()
    photos = sorted((shared / "data" / "celeba-wild-ids").rglob("*.jpg"))[:3]
    frames = [np.asarray(Image.open(p).convert("RGB").resize((128, 128))) for p in photos for _ in range(3)]
    clean = write_video(folder / "clean.mp4", frames, fps=5)
    data = clean.read_bytes()
    for j, mutated in enumerate(mutations(data, rng, 8)):
        (folder / f"m{j}.mp4").write_bytes(mutated)
    return folder


def tiny_recognizer(folder: Path) -> Path:
    import torch

    from hf_fiqa.models.iresnet import IResNetImageProcessor
    from hf_fiqa.models.mobilefacenet import MobileFaceNetConfig, MobileFaceNetModel

    torch.manual_seed(0)
    MobileFaceNetModel(MobileFaceNetConfig(embedding_size=16)).eval().save_pretrained(folder)
    IResNetImageProcessor().save_pretrained(folder)
    return folder


def listing(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


def assert_no_traceback(capsys) -> str:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    return captured.err


@pytest.mark.slow
def test_fuzzed_photos_through_score_and_embed(fuzz_inputs, tiny_maniqa_dir, yunet_weights, tmp_path, capsys):
    before = listing(fuzz_inputs)
    inputs = sorted(str(p) for p in fuzz_inputs.iterdir())
    out = tmp_path / "out" / "scores.jsonl"
    code = cli_main(["score", str(fuzz_inputs), "--model", str(tiny_maniqa_dir), "--detector-weights",
                     str(yunet_weights), "--device", "cpu", "--output", str(out), "--no-progress"])
    assert code in (0, 1)
    assert_no_traceback(capsys)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    by_path: dict[str, list[dict]] = {}
    for row in rows:
        by_path.setdefault(row["path"], []).append(row)
    assert sorted(by_path) == inputs  # every input has its record, nothing else
    for path, group in by_path.items():
        statuses = {r["status"] for r in group}
        assert statuses <= {"ok", "error", "no_face"}
        if statuses != {"ok"}:
            assert len(group) == 1 or statuses == {"ok", "error"}, path
        for r in group:
            if r["status"] == "ok":
                assert np.isfinite(r["quality"])
    assert any(r["status"] == "ok" for r in rows) and any(r["status"] == "error" for r in rows)
    assert code == 1  # some inputs were unreadable
    assert listing(fuzz_inputs) == before
    assert listing(tmp_path) == {tmp_path / "out", out}

    model = tiny_recognizer(tmp_path / "rec")
    before_tmp = listing(tmp_path)
    emb_out = tmp_path / "emb"
    code = cli_main(["embed", str(fuzz_inputs), "--model", str(model), "--output", str(emb_out), "--detector-weights",
                     str(yunet_weights), "--device", "cpu", "--no-progress", "--batch-size", "8"])
    assert code in (0, 1)
    assert_no_traceback(capsys)
    with open(emb_out / "rows.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert sorted(r["path"] for r in table) == sorted(Path(p).name for p in inputs)
    embeddings = np.load(emb_out / "embeddings.npy")
    assert embeddings.shape[0] == len(table)
    ok = np.array([r["ok"] == "True" for r in table])
    assert ok.any() and (~ok).any() and np.isfinite(embeddings[ok]).all()
    assert listing(fuzz_inputs) == before
    new = listing(tmp_path) - before_tmp
    assert new == {emb_out, emb_out / "embeddings.npy", emb_out / "rows.csv", emb_out / "embed_manifest.json"}


@pytest.mark.slow
def test_fuzzed_videos_through_video(fuzz_videos, tiny_maniqa_dir, yunet_weights, tmp_path, capsys):
    before = listing(fuzz_videos)
    videos = sorted(fuzz_videos.iterdir())
    for k, video in enumerate(videos):
        out = tmp_path / f"v{k}.csv"
        code = cli_main(["video", str(video), "--model", str(tiny_maniqa_dir), "--detector-weights",
                         str(yunet_weights), "--device", "cpu", "--output", str(out), "--no-progress"])
        assert code in (0, 1), video
        err = assert_no_traceback(capsys)
        assert out.is_file()  # one record (the series, possibly empty) per input
        frames = list(csv.DictReader(out.open()))
        if video.name == "clean.mp4":
            assert code == 0 and len(frames) == 9
        if code == 1:
            assert video.name in err
    assert listing(fuzz_videos) == before
    assert listing(tmp_path) == {tmp_path / f"v{k}.csv" for k in range(len(videos))}
