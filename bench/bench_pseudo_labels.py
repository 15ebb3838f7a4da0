"""Benchmark SDD-FIQA pseudo-labelling at MS-Celeb-1M-like scale; prints JSON to stdout.

Synthetic data: 512-d clustered embeddings (identity centre + per-image noise of random strength,
stored float16 in a memory-mapped .npy) with long-tailed identity sizes like MS1M (~85k
identities for 5.8M images, mean ~68 per identity, heavy tail): sizes are drawn from a
log-normal and rescaled to the requested total.

Measured:
* ``hf_fiqa.labels.sdd_pseudo_labels`` with the defaults (24/24/12) on each size in ``--sizes``,
  each in a fresh subprocess so its peak RSS (``ru_maxrss``) is its own;
* two per-image loops on a small subset (``--baseline-rows`` images of a ``--baseline-dataset``
  row dataset): ``reference_style_loop`` follows the reference code's structure (a linear scan of
  all rows per identity for positives and again for negatives in every repetition, one cosine
  per pair from raw features, rejection-sampled negatives, one ``scipy.stats.wasserstein_distance``
  per image); ``vectorised_loop`` is a tidier loop (one scan per identity, normalised features,
  each image's 24 similarities as one matrix-vector product). Scan and per-image costs are timed
  separately and extrapolated: scans grow with rows x identities, the rest with rows.

Usage: ``python bench/bench_pseudo_labels.py [--sizes 100000 1000000] [--threads 2] [--neg-pool-size 256]``
(``--threads`` sets torch's and OpenMP's threads in the measured process).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MS1M_ROWS = 5_800_000
MS1M_IDENTITIES = 85_000
DIM = 512


def identity_sizes(rows: int, seed: int = 0) -> np.ndarray:
    """Long-tailed identity sizes summing to ``rows`` with MS1M's mean (~68 images/identity)."""
    rng = np.random.default_rng(seed)
    n_ids = max(2, round(rows * MS1M_IDENTITIES / MS1M_ROWS))
    raw = rng.lognormal(mean=0.0, sigma=0.8, size=n_ids)
    sizes = np.maximum(2, np.floor(raw / raw.sum() * rows)).astype(np.int64)
    # Fix the total by adjusting the largest identities (keeps the tail shape).
    diff = rows - int(sizes.sum())
    big = np.argsort(sizes)[::-1]
    i = 0
    while diff != 0:
        j = big[i % len(big)]
        step = 1 if diff > 0 else -1
        if sizes[j] + step >= 2:
            sizes[j] += step
            diff -= step
        i += 1
    return sizes


def make_dataset(rows: int, path: Path, seed: int = 0, chunk: int = 65536) -> np.ndarray:
    """Write float16 clustered embeddings to ``path`` (.npy, in chunks); return identities."""
    import torch

    sizes = identity_sizes(rows, seed)
    ids = np.repeat(np.arange(sizes.shape[0], dtype=np.int64), sizes)
    rng = np.random.default_rng(seed + 1)
    rng.shuffle(ids)  # identities interleaved, as in a real image list
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(sizes.shape[0], DIM, generator=gen)
    centres /= centres.norm(dim=1, keepdim=True)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(rows, DIM))
    ids_t = torch.from_numpy(ids)
    for lo in range(0, rows, chunk):
        hi = min(lo + chunk, rows)
        noise = torch.randn(hi - lo, DIM, generator=gen)
        # Per-image noise strength: cosine to the identity centre spreads over ~0.25-0.9.
        strength = torch.rand(hi - lo, 1, generator=gen) * 0.12 + 0.02
        out[lo:hi] = (centres[ids_t[lo:hi]] + noise * strength).numpy().astype(np.float16)
    out.flush()
    del out
    return ids


def _run_ours(emb_path: str, ids_path: str, threads: int, device: str, pool: int | None) -> dict:
    """Child process: run the library on the memory-mapped data and report time and peak RSS."""
    import torch

    torch.set_num_threads(threads)
    from hf_fiqa.labels import sdd_pseudo_labels

    emb = np.load(emb_path, mmap_mode="r")
    ids = np.load(ids_path)
    t0 = time.perf_counter()
    frame, report = sdd_pseudo_labels(emb, ids, device=device, neg_pool_size=pool)
    seconds = time.perf_counter() - t0
    return {
        "rows": int(emb.shape[0]),
        "identities": int(report.identities),
        "seconds": round(seconds, 2),
        "rows_per_second": round(emb.shape[0] / seconds, 1),
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),
        "quality_mean": round(float(frame["quality"].mean()), 3),
        "pool_fallback_draws": report.pool_fallback_draws,
        "neg_pool_size": report.neg_pool_size,
        "cached_on_device": report.cached_on_device,
    }


def _timed_scan(id_list: list, target) -> list[int]:
    """The reference's way of finding an identity's images: a Python pass over every row."""
    return [i for i, v in enumerate(id_list) if v == target]


def reference_style_loop(x: np.ndarray, ids: np.ndarray, rows: np.ndarray, num_pos=24, num_neg=24, repetitions=12, seed=0):
    """The reference algorithm's structure, labelling only ``rows`` (a subset) of the dataset.

    Per repetition: for each identity a linear scan for its images (once for positives, once
    for negatives), per image a shuffle of its other images, per pair a cosine from raw features
    (dot product over the two norms), negatives by rejection sampling with a list-membership
    test, then one ``scipy.stats.wasserstein_distance`` per image.
    Returns (scan seconds, all other seconds, number of scans).
    """
    from scipy.stats import wasserstein_distance

    rnd = random.Random(seed)
    feats = x.astype(np.float32)
    id_list = ids.tolist()
    n = len(id_list)
    by_identity: dict = {}
    for r in rows.tolist():
        by_identity.setdefault(id_list[r], []).append(r)
    scan_s = other_s = 0.0
    scans = 0

    def cos(a, b):
        return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))

    for _ in range(repetitions):
        pos, neg = {}, {}
        for c, targets in by_identity.items():
            t0 = time.perf_counter()
            members = _timed_scan(id_list, c)
            scan_s += time.perf_counter() - t0
            scans += 1
            t0 = time.perf_counter()
            for r in targets:
                others = [m for m in members if m != r]
                rnd.shuffle(others)
                pos[r] = [cos(feats[r], feats[j]) for j in others[:num_pos]]
            other_s += time.perf_counter() - t0
        for c, targets in by_identity.items():
            t0 = time.perf_counter()
            _timed_scan(id_list, c)
            scan_s += time.perf_counter() - t0
            scans += 1
            t0 = time.perf_counter()
            for r in targets:
                picked: list[int] = []
                while len(picked) < num_neg:
                    j = rnd.randint(0, n - 1)
                    if j in picked or id_list[j] == c:
                        continue
                    picked.append(j)
                neg[r] = [cos(feats[r], feats[j]) for j in picked]
            other_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        for r in rows.tolist():
            if pos[r]:
                wasserstein_distance(pos[r], neg[r])
        other_s += time.perf_counter() - t0
    return scan_s, other_s, scans


def vectorised_loop(x: np.ndarray, ids: np.ndarray, rows: np.ndarray, num_pos=24, num_neg=24, repetitions=12, seed=0):
    """A tidier per-image loop (a stronger baseline): normalised features, one scan per identity,
    the 24 similarities of an image as one small matrix-vector product, scipy per image.
    Returns (scan seconds, per-image seconds, number of scans)."""
    from scipy.stats import wasserstein_distance

    rnd = random.Random(seed)
    xn = x.astype(np.float32)
    xn /= np.linalg.norm(xn, axis=1, keepdims=True)
    id_list = ids.tolist()
    n = len(id_list)
    t0 = time.perf_counter()
    members = {c: _timed_scan(id_list, c) for c in sorted(set(ids[rows].tolist()))}
    scan_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for r in rows.tolist():
        others = [i for i in members[id_list[r]] if i != r]
        if not others:
            continue
        for _ in range(repetitions):
            pos = rnd.sample(others, min(num_pos, len(others)))
            neg: list[int] = []
            while len(neg) < num_neg:
                j = rnd.randrange(n)
                if id_list[j] != id_list[r] and j not in neg:
                    neg.append(j)
            wasserstein_distance(xn[pos] @ xn[r], xn[neg] @ xn[r])
    return scan_s, time.perf_counter() - t0, len(members)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--neg-pool-size", default="256", help="library's neg_pool_size ('none' = independent draws)")
    parser.add_argument("--baseline-rows", type=int, default=300, help="rows labelled by the per-image loops")
    parser.add_argument("--baseline-dataset", type=int, default=20_000, help="rows of the dataset the loops scan")
    parser.add_argument("--skip-ours", action="store_true", help="only time the per-image loops")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        pool = None if args.neg_pool_size.lower() == "none" else int(args.neg_pool_size)
        print(json.dumps(_run_ours(args.child[0], args.child[1], args.threads, args.device, pool)))
        return

    result: dict = {
        "machine": {"cpus": os.cpu_count(), "torch_threads": args.threads, "load_average_at_start": os.getloadavg()},
        "ours": [],
    }
    with tempfile.TemporaryDirectory(prefix="bench_sdd_") as tmp:
        for rows in [] if args.skip_ours else args.sizes:
            emb_path, ids_path = Path(tmp) / f"emb_{rows}.npy", Path(tmp) / f"ids_{rows}.npy"
            t0 = time.perf_counter()
            ids = make_dataset(rows, emb_path)
            np.save(ids_path, ids)
            gen_seconds = time.perf_counter() - t0
            env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
            proc = subprocess.run(
                [sys.executable, __file__, "--threads", str(args.threads), "--device", args.device,
                 "--neg-pool-size", args.neg_pool_size, "--child", str(emb_path), str(ids_path)],
                capture_output=True, text=True, env=env, check=True,
            )
            entry = json.loads(proc.stdout.strip().splitlines()[-1])
            entry["data_generation_seconds"] = round(gen_seconds, 1)
            result["ours"].append(entry)
            emb_path.unlink()

        # Per-image loops on a small subset of a smaller dataset.
        n_data = args.baseline_dataset
        emb_path = Path(tmp) / "emb_baseline.npy"
        ids = make_dataset(n_data, emb_path, seed=1)
        emb = np.load(emb_path)
        rows = np.random.default_rng(0).choice(n_data, size=args.baseline_rows, replace=False)
        loops = {}
        for name, fn in (("reference_style_loop", reference_style_loop), ("vectorised_loop", vectorised_loop)):
            scan_s, image_s, scans = fn(emb, ids, rows)
            loops[name] = {
                "dataset_rows": n_data,
                "labelled_rows": args.baseline_rows,
                "scans": scans,
                "scan_seconds": round(scan_s, 3),
                "other_seconds": round(image_s, 3),
                "seconds_per_image_excluding_scans": image_s / args.baseline_rows,
                # seconds per (row, identity) visit of a linear scan, and scans per identity
                "scan_seconds_per_row_visit": scan_s / (scans * n_data),
                "scans_per_identity": scans / len(set(ids[rows].tolist())),
            }

    def loop_seconds(loop: dict, rows: int, identities: int) -> float:
        scan = loop["scan_seconds_per_row_visit"] * rows * identities * loop["scans_per_identity"]
        return rows * loop["seconds_per_image_excluding_scans"] + scan

    result["per_image_loops"] = loops
    speedups = {}
    for entry in result["ours"]:
        rows, n_ids = entry["rows"], entry["identities"]
        ours_per_row = entry["seconds"] / rows
        speedups[str(rows)] = {
            name: {
                "loop_seconds_per_image_excluding_scans": round(loop["seconds_per_image_excluding_scans"], 6),
                "speedup_per_image_excluding_scans": round(loop["seconds_per_image_excluding_scans"] / ours_per_row, 1),
                "loop_projected_seconds_with_scans": round(loop_seconds(loop, rows, n_ids)),
                "speedup_with_scans": round(loop_seconds(loop, rows, n_ids) / entry["seconds"], 1),
            }
            for name, loop in loops.items()
        }
    if not result["ours"]:
        print(json.dumps(result, indent=2))
        return
    largest = max(result["ours"], key=lambda e: e["rows"])
    result["ours_seconds_per_image"] = {str(e["rows"]): e["seconds"] / e["rows"] for e in result["ours"]}
    result["speedups"] = speedups
    result["projection_ms1m"] = {
        "rows": MS1M_ROWS,
        "identities": MS1M_IDENTITIES,
        "ours_seconds_linear_from_largest_run": round(largest["seconds"] / largest["rows"] * MS1M_ROWS),
        **{f"{name}_seconds": round(loop_seconds(loop, MS1M_ROWS, MS1M_IDENTITIES)) for name, loop in loops.items()},
    }
    ref = speedups[str(largest["rows"])]["reference_style_loop"]
    result["targets"] = {
        "speedup_ge_100x_vs_reference_style_loop_at_largest_size_with_scans": ref["speedup_with_scans"] >= 100,
        "speedup_ge_100x_vs_reference_style_loop_excluding_scans": ref["speedup_per_image_excluding_scans"] >= 100,
        "one_million_rows_le_120s": any(e["rows"] >= 1_000_000 and e["seconds"] <= 120 for e in result["ours"]),
        "one_million_rows_le_8gib": any(e["rows"] >= 1_000_000 and e["peak_rss_gib"] <= 8 for e in result["ours"]),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
