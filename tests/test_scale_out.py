"""``embed`` and ``score`` over several processes: the merged output equals the single-process one, and a run
whose process was killed finishes, when started again, with the same output.

Real photos (LFW, ``../shared``), the real YuNet detector and small randomly initialised models; the processes are
started by ``accelerate launch`` (``--multi_gpu`` on a machine without CUDA joins CPU processes over gloo).
"""

from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from hf_fiqa.atomic import RowWriter, read_row_file
from hf_fiqa.sharding import OutputConflictError, ProcessGroup, ShardedRun, prepared_batches

N_PHOTOS = 40


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(n_processes: int, *argv: str) -> list[str]:
    """The command line: plain ``python -m hf_fiqa.cli`` for one process, ``accelerate launch`` for more."""
    if n_processes == 1:
        return [sys.executable, "-m", "hf_fiqa.cli", *argv]
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(n_processes),
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
            "--main_process_port", str(free_port()), "-m", "hf_fiqa.cli", *argv]


def environment() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}


def run(cmd: list[str], expected: int = 0, timeout: float = 300) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=environment())
    assert done.returncode == expected, f"{' '.join(cmd)}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


# ----------------------------------------------------------------------------- the pieces, in one process


def test_shards_are_dealt_by_rank_and_batches_stay_inside_a_shard(tmp_path):
    runs = [ShardedRun(tmp_path / "s", n_rows=10, shard_size=4, key="k", suffixes=(".csv",),
                       group=ProcessGroup(rank=r, world=2)) for r in (0, 1)]
    assert runs[0].n_shards == 3 and [list(runs[0].rows(s)) for s in range(3)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert runs[0].mine() == [0, 2] and runs[1].mine() == [1]
    assert runs[0].batches(3) == [(0, [0, 1, 2]), (0, [3]), (2, [8, 9])]
    batches = list(prepared_batches(list("abcdefghij"), str.upper, runs[0].batches(3)))
    assert [(b.shard, b.prepared, b.last) for b in batches] == [(0, ["A", "B", "C"], False), (0, ["D"], True),
                                                                (2, ["I", "J"], True)]


def test_a_shard_folder_is_resumed_restarted_or_refused(tmp_path):
    folder = tmp_path / "shards"
    run = ShardedRun(folder, n_rows=6, shard_size=2, key="inputs-a", suffixes=(".npy", ".csv"))
    run.open()
    for suffix in (".npy", ".csv"):
        run.path(0, suffix).write_text("done")
    run.path(1, ".npy").write_text("half a shard: its last file is missing")
    again = ShardedRun(folder, n_rows=6, shard_size=2, key="inputs-a", suffixes=(".npy", ".csv"))
    again.open()
    assert again.pending() == [1, 2] and again.rows_done() == 2
    with pytest.raises(OutputConflictError, match="--overwrite"):
        ShardedRun(folder, n_rows=6, shard_size=2, key="inputs-b", suffixes=(".npy", ".csv")).open()
    other_size = ShardedRun(folder, n_rows=6, shard_size=3, key="inputs-a", suffixes=(".npy", ".csv"))
    other_size.open()  # another shard size: the same results, recomputed from scratch
    assert other_size.pending() == [0, 1] and not run.path(0, ".csv").exists()
    fresh = ShardedRun(folder, n_rows=6, shard_size=3, key="inputs-b", suffixes=(".npy", ".csv"))
    fresh.open(overwrite=True)
    assert fresh.pending() == [0, 1]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_merged_row_files_equal_one_writer(tmp_path, suffix):
    rows = [{"path": f"p{i}.jpg", "quality": i / 3, "reason": "comma, \"quote\"\nnewline" if i == 2 else ""}
            for i in range(5)]
    whole = RowWriter(tmp_path / f"whole{suffix}", ["path", "quality", "reason"])
    for row in rows:
        whole.write(row)
    whole.close()
    parts = []
    for i, chunk in enumerate((rows[:2], rows[2:3], rows[3:])):
        part = RowWriter(tmp_path / f"part{i}{suffix}", ["path", "quality", "reason"])
        for row in chunk:
            part.write(row)
        parts.append(part.close())
    merged = RowWriter(tmp_path / f"merged{suffix}", ["path", "quality", "reason"])
    for part in parts:
        merged.append_rows_of(part)
    merged.close()
    assert (tmp_path / f"merged{suffix}").read_bytes() == (tmp_path / f"whole{suffix}").read_bytes()
    assert [r["path"] for r in read_row_file(tmp_path / f"merged{suffix}")] == [r["path"] for r in rows]


# ----------------------------------------------------------------------------- real launches


@pytest.fixture(scope="module")
def lfw_subset(shared, tmp_path_factory) -> Path:
    """A CSV of LFW photos (the first two of consecutive identities) plus one corrupt file: a row per outcome."""
    with open(shared / "data" / "lfw" / "labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    per_identity: dict[str, list[dict]] = {}
    for row in rows:
        per_identity.setdefault(row["identity"], []).append(row)
    picked = [r for group in per_identity.values() for r in group[:2]][: N_PHOTOS - 1]
    folder = tmp_path_factory.mktemp("lfw-subset")
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with open(folder / "photos.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "identity"])
        for r in picked:
            writer.writerow([str(shared / "data" / "lfw" / r["path"]), r["identity"]])
        writer.writerow([str(folder / "corrupt.jpg"), "nobody"])
    return folder / "photos.csv"


@pytest.fixture(scope="module")
def recognizer(tmp_path_factory) -> Path:
    import torch

    from hf_fiqa.models.iresnet import IResNetImageProcessor
    from hf_fiqa.models.mobilefacenet import MobileFaceNetConfig, MobileFaceNetModel

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("mobilefacenet")
    MobileFaceNetModel(MobileFaceNetConfig(embedding_size=64)).eval().save_pretrained(folder)
    IResNetImageProcessor().save_pretrained(folder)
    return folder


def embed_args(csv_path: Path, model: Path, out: Path, yunet: Path) -> list[str]:
    return ["embed", str(csv_path), "--model", str(model), "--output", str(out), "--detector-weights", str(yunet),
            "--shard-size", "3", "--batch-size", "4", "--device", "cpu", "--no-progress"]


def score_paths(csv_path: Path) -> list[str]:
    with open(csv_path, newline="") as fh:
        return [r["path"] for r in csv.DictReader(fh)]


def score_args(csv_path: Path, model: Path, out: Path, yunet: Path, *extra: str) -> list[str]:
    return ["score", *score_paths(csv_path), "--model", str(model), "--output", str(out), "--detector-weights",
            str(yunet), "--shard-size", "3", "--batch-size", "4", "--device", "cpu", "--no-progress", *extra]


def test_two_process_embed_equals_one_process(lfw_subset, recognizer, yunet_weights, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    run(launch(1, *embed_args(lfw_subset, recognizer, one, yunet_weights), "--workers", "0"))
    done = run(launch(2, *embed_args(lfw_subset, recognizer, two, yunet_weights)))
    assert "embedded" in done.stdout and done.stdout.count("embedded") == 1  # only the main process reports
    assert (one / "rows.csv").read_bytes() == (two / "rows.csv").read_bytes()
    a, b = np.load(one / "embeddings.npy"), np.load(two / "embeddings.npy")
    assert a.shape == (N_PHOTOS, 64) and np.isnan(a[-1]).all() and np.isfinite(a[:-1]).all()
    np.testing.assert_allclose(b, a, atol=1e-6, rtol=0)
    assert not (two / ".embed_shards").exists()


def test_two_process_score_equals_one_process(lfw_subset, tiny_maniqa_dir, yunet_weights, tmp_path):
    one, two = tmp_path / "one.csv", tmp_path / "two.csv"
    # exit status 1: the corrupt file is an error row
    run(launch(1, *score_args(lfw_subset, tiny_maniqa_dir, one, yunet_weights, "--workers", "0")), expected=1)
    run(launch(2, *score_args(lfw_subset, tiny_maniqa_dir, two, yunet_weights)), expected=1)
    assert one.read_bytes() == two.read_bytes()
    assert not (tmp_path / f".{two.name}.shards").exists()
    with open(tmp_path / "one.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["path"] for r in rows if r["face_index"] in ("", "0")] == score_paths(lfw_subset)
    assert rows[-1]["status"] == "error" and "corrupt.jpg" in rows[-1]["reason"]


def _descendant_with_rank(parent: int, rank: str) -> int | None:
    import psutil

    for child in psutil.Process(parent).children(recursive=True):
        try:
            if child.environ().get("RANK") == rank and "hf_fiqa.cli" in " ".join(child.cmdline()):
                return child.pid
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return None


def test_killed_process_then_restart_gives_the_same_output(lfw_subset, tiny_maniqa_dir, yunet_weights, tmp_path):
    """Kill one of two processes once a shard is written: the launch fails, the finished shards stay; the same
    command started again (here with one process) computes only the missing shards and merges the same file."""
    reference = tmp_path / "reference.csv"
    run(launch(1, *score_args(lfw_subset, tiny_maniqa_dir, reference, yunet_weights, "--shard-size", "1")), expected=1)

    out = tmp_path / "scores.csv"
    shards = tmp_path / f".{out.name}.shards"
    cmd = launch(2, *score_args(lfw_subset, tiny_maniqa_dir, out, yunet_weights, "--shard-size", "1"))
    launcher = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment())
    killed = None
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and launcher.poll() is None:
        if shards.is_dir() and any(shards.glob("shard_*.csv")):
            killed = _descendant_with_rank(launcher.pid, "1")
            if killed is not None:
                os.kill(killed, signal.SIGKILL)
                break
        time.sleep(0.02)
    log, _ = launcher.communicate(timeout=240)
    assert killed is not None, f"no shard appeared before the run ended:\n{log[-3000:]}"
    assert launcher.returncode != 0, log[-3000:]
    assert not out.exists()
    finished = sorted(p.name for p in shards.glob("shard_*.csv"))
    assert 0 < len(finished) < N_PHOTOS, finished

    done = run(launch(1, *score_args(lfw_subset, tiny_maniqa_dir, out, yunet_weights, "--shard-size", "1")), expected=1)
    assert f"{len(finished)} photos were scored by an earlier run" in done.stderr
    assert out.read_bytes() == reference.read_bytes()
    assert not shards.exists()
