"""SDD-FIQA pseudo-labels: exactness against scipy, sampling rules, determinism, sharding, I/O."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import wasserstein_distance

from hf_fiqa.labels import EmbeddingError, normalise_repetitions, sdd_pseudo_labels, sdd_raw_wasserstein
from hf_fiqa.commands.pseudo_labels import main as cli_main
from hf_fiqa.labels.embeddings import EmbeddingSource
from hf_fiqa.labels.grouping import group_identities
from hf_fiqa.labels.sampling import floyd_sample
from hf_fiqa.labels.shard import ShardWorker
from hf_fiqa.labels.wasserstein import wasserstein_1d, wasserstein_1d_equal, wasserstein_1d_padded


def clustered(n_ids: int = 12, dim: int = 16, max_size: int = 30, seed: int = 0, singletons: int = 1):
    """Identities of random sizes (some singletons) around random centres, rows shuffled."""
    rng = np.random.default_rng(seed)
    sizes = np.concatenate([rng.integers(2, max_size, n_ids - singletons), np.ones(singletons, dtype=int)])
    ids = np.repeat(np.arange(n_ids), sizes)
    rng.shuffle(ids)
    centres = rng.normal(size=(n_ids, dim))
    noise = rng.uniform(0.3, 1.5, len(ids))[:, None] * rng.normal(size=(len(ids), dim))
    return (centres[ids] + noise).astype(np.float32), ids


def scipy_all_pairs(x: np.ndarray, ids: np.ndarray) -> dict[int, float]:
    """Reference: per row, scipy W-1 between similarities to all other own-identity rows and to
    all other-identity rows."""
    xn = x.astype(np.float64)
    xn /= np.linalg.norm(xn, axis=1, keepdims=True)
    sims = xn @ xn.T
    out = {}
    for r in range(len(ids)):
        same = ids == ids[r]
        same[r] = False
        if same.any():
            out[r] = wasserstein_distance(sims[r, same], sims[r, ids != ids[r]])
    return out


# ------------------------------------------------------------------------------ building blocks


def test_wasserstein_rows_match_scipy():
    rng = np.random.default_rng(1)
    u = rng.normal(size=(40, 9)).astype(np.float32)
    v = rng.normal(0.5, 2.0, size=(40, 13)).astype(np.float32)
    u_count = rng.integers(1, 10, 40)
    v_count = rng.integers(1, 14, 40)
    u[np.arange(9)[None, :] >= u_count[:, None]] = np.inf
    v[np.arange(13)[None, :] >= v_count[:, None]] = np.inf
    u[0, :3] = v[0, :3] = 0.25  # ties across the two samples
    got = wasserstein_1d_padded(u, v)
    want = [wasserstein_distance(u[i, : u_count[i]], v[i, : v_count[i]]) for i in range(40)]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)

    a = rng.normal(size=(30, 24)).astype(np.float32)
    b = rng.normal(size=(30, 24)).astype(np.float32)
    want = [wasserstein_distance(a[i], b[i]) for i in range(30)]
    np.testing.assert_allclose(wasserstein_1d_equal(a, b), want, atol=1e-6)
    np.testing.assert_allclose(wasserstein_1d(a, b), want, atol=1e-6)
    with pytest.raises(ValueError, match="finite"):
        wasserstein_1d_padded(np.full((1, 3), np.inf, np.float32), b[:1])


def test_floyd_sample_is_distinct_in_range_and_uniform():
    rng = np.random.default_rng(2)
    population = np.array([5, 24, 25, 1000] * 2000)
    picks = floyd_sample(rng.random((len(population), 5)), population)
    assert picks.shape == (8000, 5)
    assert (picks >= 0).all() and (picks < population[:, None]).all()
    assert all(len(set(row)) == 5 for row in picks)
    # population 5, k 5: every item exactly once; population 25: each item ~ 5/25 of rows.
    assert (np.sort(picks[population == 5], axis=1) == np.arange(5)).all()
    counts = np.bincount(picks[population == 25].ravel(), minlength=25)
    expected = 2000 * 5 / 25
    assert counts.min() > 0.8 * expected and counts.max() < 1.2 * expected
    with pytest.raises(ValueError, match="distinct"):
        floyd_sample(rng.random((1, 6)), np.array([5]))


def test_grouping_sorts_once_and_keeps_identities_contiguous():
    ids = np.array(["b", "a", "c", "a", "b", "a"])
    index = group_identities(ids)
    assert list(index.labels) == ["a", "b", "c"]
    assert list(index.sizes) == [3, 2, 1] and list(index.starts) == [0, 3, 5]
    assert list(index.order) == [1, 3, 5, 0, 4, 2]  # stable within an identity
    assert (index.labels[index.codes] == ids).all()


# ------------------------------------------------------------------------------ exactness


def test_all_pairs_matches_scipy_per_row():
    x, ids = clustered(seed=3)
    want = scipy_all_pairs(x, ids)
    frame, report = sdd_pseudo_labels(x, ids, num_pos="all", num_neg="all", repetitions=5)
    assert list(frame.columns) == ["row", "identity", "wasserstein", "quality"]
    assert list(frame["row"]) == sorted(want)
    np.testing.assert_allclose(frame["wasserstein"], [want[r] for r in frame["row"]], rtol=0, atol=1e-5)
    w = np.array([want[r] for r in frame["row"]])
    np.testing.assert_allclose(frame["quality"], (w - w.min()) / (w.max() - w.min()) * 100, atol=1e-3)
    assert (frame["identity"].to_numpy() == ids[frame["row"]]).all()
    assert report.repetitions == 1  # deterministic variant: repetitions are not repeated


def test_all_pairs_streamed_from_float16_memmap_matches_scipy(tmp_path):
    x, ids = clustered(n_ids=9, seed=4)
    x16 = x.astype(np.float16)
    np.save(tmp_path / "e.npy", x16)
    mm = np.load(tmp_path / "e.npy", mmap_mode="r")
    want = scipy_all_pairs(x16.astype(np.float32), ids)
    frame, report = sdd_pseudo_labels(mm, ids, num_pos="all", num_neg="all", cache_bytes=0, chunk_size=16)
    assert not report.cached_on_device and report.embedding_dtype == "float16"
    np.testing.assert_allclose(frame["wasserstein"], [want[r] for r in frame["row"]], atol=1e-5)


@pytest.mark.parametrize("pool", [10_000, None])
def test_sampling_everything_reduces_to_all_pairs(pool):
    """With more samples requested than exist, both negative samplers must return all of them."""
    x, ids = clustered(seed=5)
    exact, _ = sdd_pseudo_labels(x, ids, num_pos="all", num_neg="all")
    sampled, report = sdd_pseudo_labels(x, ids, num_pos=1000, num_neg=10_000, neg_pool_size=pool, repetitions=3)
    np.testing.assert_allclose(sampled["wasserstein"], exact["wasserstein"], atol=1e-6)
    assert report.rows_with_fewer_positives == len(sampled) and report.rows_with_fewer_negatives == len(sampled)


# ------------------------------------------------------------------------------ sampling rules


def _worker(x, ids, pos_k=4, neg_k=5, pool=40):
    source = EmbeddingSource.open(x, torch.device("cpu"), cache_bytes=2**30)
    index = group_identities(ids)
    worker = ShardWorker(source, index, pos_k, neg_k, 1, 7, pool)
    return worker, worker.load_chunk(0, index.num_rows), index


def _sources(values: np.ndarray, sims: np.ndarray) -> np.ndarray:
    """Column of ``sims`` each finite value came from (similarities are distinct floats)."""
    hit = np.abs(sims[None, :] - values[:, None]) < 1e-6
    assert (hit.sum(axis=1) == 1).all()
    return hit.argmax(axis=1)


def test_drawn_positives_and_negatives_follow_the_definition():
    x, ids = clustered(n_ids=10, dim=24, max_size=12, seed=6, singletons=0)
    worker, chunk, index = _worker(x, ids)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    sims = xn @ xn.T
    active = chunk.size >= 2
    neg_hits = np.zeros(len(ids))
    for rep in range(60):
        picks = worker._positive_picks(chunk, rep, active)
        negs = worker._pool_negatives(chunk, rep, active)
        for local in range(0, chunk.b, 7):
            row = chunk.rows[local]
            pos = worker._positive_values(chunk, np.array([local]), picks, 4)[0]
            pos_rows = _sources(pos[np.isfinite(pos)], sims[row])
            assert len(pos_rows) == min(4, chunk.size[local] - 1) == len(set(pos_rows))
            assert (ids[pos_rows] == ids[row]).all() and row not in pos_rows
            neg_rows = _sources(negs[local], sims[row])
            assert len(set(neg_rows)) == 5 and (ids[neg_rows] != ids[row]).all()
            neg_hits[neg_rows] += 1
    # Over repetitions every row of the dataset serves as a negative for someone.
    assert (neg_hits > 0).all()


@pytest.mark.parametrize("kwargs", [{}, {"num_pos": "all"}])
def test_identities_too_large_for_a_gram_matrix_give_the_same_labels(monkeypatch, kwargs):
    x, ids = clustered(n_ids=8, max_size=40, seed=19)
    ref, _ = sdd_pseudo_labels(x, ids, neg_pool_size=32, repetitions=3, **kwargs)
    monkeypatch.setattr("hf_fiqa.labels.shard.GRAM_MAX_ROWS", 10)
    big, _ = sdd_pseudo_labels(x, ids, neg_pool_size=32, repetitions=3, **kwargs)
    np.testing.assert_allclose(big["wasserstein"], ref["wasserstein"], atol=1e-6)


def test_giant_identity_falls_back_to_direct_draws():
    """A pool full of one identity cannot give that identity's rows their negatives."""
    rng = np.random.default_rng(8)
    ids = np.concatenate([np.zeros(600, dtype=int), np.repeat(np.arange(1, 11), 5)])
    x = rng.normal(size=(len(ids), 8)).astype(np.float32)
    frame, report = sdd_pseudo_labels(x, ids, num_neg=24, neg_pool_size=24, repetitions=2)
    assert report.pool_fallback_draws > 0
    assert len(frame) == len(ids) and np.isfinite(frame["wasserstein"]).all()


# ------------------------------------------------------------------------------ determinism, shape


def test_sampled_labels_are_deterministic_with_expected_shape():
    x, ids = clustered(n_ids=40, max_size=60, seed=9, singletons=3)
    a, report = sdd_pseudo_labels(x, ids, neg_pool_size=64, seed=11)
    b, _ = sdd_pseudo_labels(x, ids, neg_pool_size=64, seed=11)
    c, _ = sdd_pseudo_labels(x, ids, neg_pool_size=64, seed=12)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["wasserstein"], c["wasserstein"])
    sizes = np.bincount(ids)
    assert len(a) == int(sizes[sizes > 1].sum()) == report.labelled_rows
    assert a["row"].is_monotonic_increasing and (a["identity"].to_numpy() == ids[a["row"]]).all()
    assert a["quality"].between(0, 100).all() and a["quality"].std() > 0
    assert report.repetitions == 12 and report.num_pos == 24 and report.num_neg == 24


def test_quality_is_mean_of_per_repetition_minmax():
    raw = np.array([[1.0, 10.0], [2.0, 30.0], [3.0, 20.0]])
    quality, degenerate = normalise_repetitions(raw)
    np.testing.assert_allclose(quality, [0.0, 75.0, 75.0])
    assert degenerate == 0
    quality, degenerate = normalise_repetitions(np.array([[1.0, 5.0], [2.0, 5.0]]))
    assert degenerate == 1 and list(quality) == [0.0, 50.0]


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"neg_pool_size": None}, {"neg_pool_size": 30}, {"num_pos": "all"}, {"num_neg": "all", "repetitions": 2}],
)
def test_sharding_and_chunking_do_not_change_results(kwargs):
    x, ids = clustered(n_ids=60, dim=16, max_size=90, seed=10)
    rows, raw = sdd_raw_wasserstein(x, ids, seed=5, **kwargs)
    parts = [sdd_raw_wasserstein(x, ids, seed=5, rank=r, world_size=3, chunk_size=300, **kwargs) for r in range(3)]
    assert sum(len(p[0]) for p in parts) == len(rows)
    sharded_rows = np.concatenate([p[0] for p in parts])
    order = np.argsort(sharded_rows)
    assert (sharded_rows[order] == rows).all()
    np.testing.assert_allclose(np.concatenate([p[1] for p in parts])[order], raw, rtol=0, atol=1e-6)
    rows2, raw2 = sdd_raw_wasserstein(x, ids, seed=5, cache_bytes=0, chunk_size=777, **kwargs)
    np.testing.assert_allclose(raw2, raw, rtol=0, atol=1e-6)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(120)
@pytest.mark.slow
def test_two_processes_with_accelerate_equal_one(tmp_path):
    pytest.importorskip("accelerate")
    x, ids = clustered(n_ids=30, dim=16, max_size=60, seed=12)
    np.save(tmp_path / "e.npy", x)
    np.save(tmp_path / "i.npy", ids)
    script = tmp_path / "run.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import json, numpy as np
            from accelerate import Accelerator
            from hf_fiqa.labels import sdd_pseudo_labels
            acc = Accelerator(cpu=True)
            x = np.load({str(tmp_path / "e.npy")!r}, mmap_mode="r")
            ids = np.load({str(tmp_path / "i.npy")!r})
            frame, report = sdd_pseudo_labels(x, ids, seed=3, neg_pool_size=64, accelerator=acc)
            frame.to_parquet({str(tmp_path)!r} + f"/out{{acc.process_index}}.parquet")
            if acc.is_main_process:
                json.dump(report.to_dict(), open({str(tmp_path / "report.json")!r}, "w"))
            """
        )
    )
    env = dict(os.environ, OMP_NUM_THREADS="1")
    # torchrun starts the two processes (``accelerate launch --cpu`` runs a single one unless
    # MPI is set up); Accelerator(cpu=True) then joins them over gloo.
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), str(script)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=110)
    assert proc.returncode == 0, proc.stderr[-3000:]
    single, _ = sdd_pseudo_labels(x, ids, seed=3, neg_pool_size=64)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["world_size"] == 2
    for rank in range(2):  # every process returns the full, globally normalised result
        multi = pd.read_parquet(tmp_path / f"out{rank}.parquet")
        assert (multi["row"].to_numpy() == single["row"].to_numpy()).all()
        np.testing.assert_allclose(multi["wasserstein"], single["wasserstein"], atol=1e-6)
        np.testing.assert_allclose(multi["quality"], single["quality"], atol=1e-4)


# ------------------------------------------------------------------------------ inputs


def test_singletons_are_skipped_and_counted():
    x, ids = clustered(n_ids=8, seed=13, singletons=3)
    frame, report = sdd_pseudo_labels(x, ids, repetitions=2)
    singles = np.flatnonzero(np.bincount(ids) == 1)
    assert report.skipped_singleton_identities == 3 == report.skipped_singleton_rows
    assert not np.isin(frame["identity"], singles).any()
    assert report.labelled_rows == len(ids) - 3 and report.labelled_identities == 5


def test_bad_inputs_raise_clear_errors():
    x, ids = clustered(seed=14)
    bad = x.copy()
    bad[[3, 17]] = np.nan
    bad[5, 2] = np.inf
    with pytest.raises(EmbeddingError, match=r"3 rows contain NaN or inf, e\.g\. rows \[3, 5, 17\]"):
        sdd_pseudo_labels(bad, ids)
    zero = x.copy()
    zero[[8, 9]] = 0
    with pytest.raises(EmbeddingError, match=r"zero norm, e\.g\. rows \[8, 9\]"):
        sdd_pseudo_labels(zero, ids)
    with pytest.raises(ValueError, match=rf"length mismatch: {len(x)} embedding rows but {len(x) - 1} identities"):
        sdd_pseudo_labels(x, ids[:-1])
    with pytest.raises(ValueError, match="integers or strings"):
        sdd_pseudo_labels(x, ids.astype(float))
    with pytest.raises(ValueError, match="at least two identities"):
        sdd_pseudo_labels(x, np.zeros(len(x), dtype=int))
    with pytest.raises(ValueError, match="num_pos"):
        sdd_pseudo_labels(x, ids, num_pos=0)
    with pytest.raises(ValueError, match="num_neg"):
        sdd_pseudo_labels(x, ids, num_neg="some")
    with pytest.raises(ValueError, match="neg_pool_size"):
        sdd_pseudo_labels(x, ids, neg_pool_size=10)
    with pytest.raises(EmbeddingError, match="2-D"):
        sdd_pseudo_labels(x[None], ids)


def test_float16_and_memmap_inputs_give_identical_labels(tmp_path):
    x, ids = clustered(n_ids=20, seed=15)
    x16 = x.astype(np.float16)
    ref, _ = sdd_pseudo_labels(x16.astype(np.float32), ids, neg_pool_size=32)
    half, report = sdd_pseudo_labels(x16, ids, neg_pool_size=32)
    assert report.embedding_dtype == "float16"
    np.testing.assert_allclose(half["wasserstein"], ref["wasserstein"], atol=1e-6)
    np.save(tmp_path / "e.npy", x16)
    mm = np.load(tmp_path / "e.npy", mmap_mode="r")
    mapped, report = sdd_pseudo_labels(mm, ids, neg_pool_size=32, cache_bytes=0, chunk_size=50)
    assert not report.cached_on_device
    np.testing.assert_allclose(mapped["wasserstein"], ref["wasserstein"], atol=1e-6)


def test_string_identities_equal_integer_identities():
    x, ids = clustered(n_ids=10, seed=16)
    names = np.array([f"person_{i:03d}" for i in ids])  # same sort order as the integers
    by_int, _ = sdd_pseudo_labels(x, ids, repetitions=3)
    by_name, _ = sdd_pseudo_labels(x, names, repetitions=3)
    assert (by_name["identity"].to_numpy() == names[by_name["row"]]).all()
    np.testing.assert_allclose(by_name["quality"], by_int["quality"])


# ------------------------------------------------------------------------------ command line


def test_cli_writes_parquet_report_and_histogram(tmp_path, capsys):
    x, ids = clustered(n_ids=10, seed=17)
    np.save(tmp_path / "e.npy", x.astype(np.float16))
    np.save(tmp_path / "i.npy", np.array([f"id{i}" for i in ids]))
    out = tmp_path / "labels.parquet"
    code = cli_main(["pseudo-label", "--embeddings", str(tmp_path / "e.npy"), "--identities", str(tmp_path / "i.npy"),
                     "--output", str(out), "--repetitions", "3", "--num-neg", "all", "--histogram",
                     str(tmp_path / "h.png"), "--no-progress"])
    assert code == 0
    frame = pd.read_parquet(out)
    assert list(frame.columns) == ["row", "identity", "wasserstein", "quality"] and len(frame) == len(ids) - 1
    report = json.loads((tmp_path / "labels.report.json").read_text())
    assert report["rows"] == len(ids) and report["skipped_singleton_identities"] == 1 and report["num_neg"] == "all"
    assert json.loads(capsys.readouterr().out)["labelled_rows"] == len(frame)
    assert (tmp_path / "h.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_rejects_pickled_identities_and_bad_rows(tmp_path, capsys):
    x, ids = clustered(n_ids=5, seed=18)
    np.save(tmp_path / "e.npy", x)
    np.save(tmp_path / "i.npy", np.array([f"id{i}" for i in ids], dtype=object), allow_pickle=True)
    args = ["pseudo-label", "--embeddings", str(tmp_path / "e.npy"), "--identities", str(tmp_path / "i.npy"),
            "--output", str(tmp_path / "o.parquet"), "--no-progress"]
    assert cli_main(args) == 2
    assert "unicode array" in capsys.readouterr().err
    x[4] = np.nan
    np.save(tmp_path / "e.npy", x)
    np.save(tmp_path / "i.npy", ids)
    assert cli_main(args) == 2
    err = capsys.readouterr().err
    assert "rows [4]" in err and "e.npy" in err
    assert not (tmp_path / "o.parquet").exists()


def test_cli_reads_rows_table_and_skips_failed_rows(tmp_path, capsys):
    """The rows.csv of ``hf-fiqa embed``: failed rows (ok=False) hold NaN and are left out."""
    x, ids = clustered(n_ids=8, seed=20, singletons=0)
    x[[2, 7]] = np.nan
    np.save(tmp_path / "e.npy", x)
    table = pd.DataFrame({"row": np.arange(len(ids)), "path": [f"p{i}.jpg" for i in range(len(ids))],
                          "identity": [f"id{i}" for i in ids], "ok": [i not in (2, 7) for i in range(len(ids))]})
    table.to_csv(tmp_path / "rows.csv", index=False)
    out = tmp_path / "labels.parquet"
    code = cli_main(["pseudo-label", "--embeddings", str(tmp_path / "e.npy"), "--rows", str(tmp_path / "rows.csv"),
                     "--output", str(out), "--repetitions", "2", "--no-progress"])
    assert code == 0
    frame = pd.read_parquet(out)
    assert not frame["row"].isin([2, 7]).any() and len(frame) == len(ids) - 2
    assert (frame["identity"].to_numpy() == table["identity"].to_numpy()[frame["row"]]).all()
    assert json.loads(capsys.readouterr().out)["rows_left_out_not_ok"] == 2
    # The same selection through the API names rows of the full matrix in errors too.
    keep = np.setdiff1d(np.arange(len(ids)), [7])
    with pytest.raises(EmbeddingError, match=r"rows \[2\]"):
        sdd_pseudo_labels(x, ids[keep], rows=keep)
