"""Speed of the FIQA evaluation maths at realistic scale; prints one JSON object.

Run: ``OMP_NUM_THREADS=2 python bench/edc_speed.py [--pairs 5000000]``. Target: an FNM-EDC
over millions of genuine comparisons in a few seconds on a 2-core CPU (one sort + cumsums).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from hf_fiqa.metrics.edc import fnm_edc, threshold_for_fmr
from hf_fiqa.metrics.pairs import build_pairs, pair_similarities


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=5_000_000, help="genuine comparisons for the EDC")
    parser.add_argument("--samples", type=int, default=100_000, help="samples for pair building / similarities")
    parser.add_argument("--identities", type=int, default=5_000)
    parser.add_argument("--max-impostors", type=int, default=2_000_000)
    parser.add_argument("--dim", type=int, default=512)
    args = parser.parse_args()
    rng = np.random.default_rng(0)

    genuine = rng.normal(size=args.pairs)
    quality = rng.random(args.pairs)
    impostor = rng.normal(-3.0, 1.0, size=args.pairs)
    thr, t_thr = _timed(lambda: threshold_for_fmr(impostor, 1e-3))
    res, t_edc = _timed(lambda: fnm_edc(genuine, quality, threshold=thr))
    quantised = np.round(quality * 100)  # [0, 100] integer qualities: many ties
    _, t_edc_ties = _timed(lambda: fnm_edc(genuine, quantised, threshold=thr))

    ids = rng.integers(0, args.identities, size=args.samples)
    pairs, t_pairs = _timed(lambda: build_pairs(ids, max_impostors=args.max_impostors, seed=0))
    emb = rng.normal(size=(args.samples, args.dim)).astype(np.float32)
    _, t_sims = _timed(lambda: pair_similarities(emb, pairs.impostor))

    print(
        json.dumps(
            {
                "edc_pairs": args.pairs,
                "threshold_for_fmr_s": round(t_thr, 3),
                "fnm_edc_s": round(t_edc, 3),
                "fnm_edc_101_quality_levels_s": round(t_edc_ties, 3),
                "edc_points": int(res.errors.size),
                "samples": args.samples,
                "genuine_pairs": int(pairs.genuine.shape[0]),
                "impostor_pairs": int(pairs.impostor.shape[0]),
                "build_pairs_s": round(t_pairs, 3),
                "impostor_similarities_s": round(t_sims, 3),
                "embedding_dim": args.dim,
            }
        )
    )


if __name__ == "__main__":
    main()
