"""EER of face recognizers on CFP's FF/FP protocol and on an identity set, from ``hf-fiqa embed`` outputs; JSON.

    hf-fiqa embed ../shared/data/cfp/labels.csv --model models/mobilefacenet --output runs/emb-mfn-cfp
    hf-fiqa embed ../shared/data/celeba-wild-ids/labels.csv --model models/mobilefacenet --output runs/emb-mfn-celeba
    python scripts/recognizer_eer.py --cfp mobilefacenet=runs/emb-mfn-cfp --identities mobilefacenet=runs/emb-mfn-celeba

CFP: the official pairs (10 folds; pairs naming identities removed from this copy are dropped), cosine similarity,
one EER over all folds' pairs. A pair with a photo where no face was found counts as a failed comparison (score
-1: a genuine pair is rejected, an impostor pair rejected too), as in deployment, and is counted in the output.
Identity sets: every genuine pair against every impostor pair of the embedded photos (face-less photos left out).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from hf_fiqa.data.cfp import read_cfp_pairs
from hf_fiqa.embedding.store import read_embeddings, read_rows
from hf_fiqa.metrics.pairs import all_impostor_pairs, encode_identities, equal_error_rate, genuine_pairs
from hf_fiqa.paths import shared_dir


def _load(folder: str) -> tuple[np.ndarray, list[str], np.ndarray]:
    rows = read_rows(Path(folder) / "rows.csv", required=("row", "path", "identity", "ok"))
    emb = read_embeddings(Path(folder) / "embeddings.npy").astype(np.float64)
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        emb = emb / norms
    return emb, rows["path"].astype(str).tolist(), rows["ok"].to_numpy(dtype=bool)


def cfp_eer(folder: str, root: Path) -> dict:
    emb, paths, ok = _load(folder)
    index = {p: i for i, p in enumerate(paths)}
    out = {}
    for protocol in ("FF", "FP"):
        pairs, dropped = read_cfp_pairs(root, protocol)
        scores, same, no_face = [], [], 0
        for pair in pairs:
            i, j = index.get(pair.path_a), index.get(pair.path_b)
            if i is None or j is None:
                raise SystemExit(f"{folder}: {pair.path_a} or {pair.path_b} was not embedded (wrong labels file?)")
            if ok[i] and ok[j]:
                scores.append(float(emb[i] @ emb[j]))
            else:
                scores.append(-1.0)
                no_face += 1
            same.append(pair.same)
        scores, same = np.asarray(scores), np.asarray(same)
        out[protocol] = {"eer": round(equal_error_rate(scores[same], scores[~same]), 4), "pairs": len(pairs),
                         "dropped_removed_identities": dropped, "pairs_with_a_faceless_photo": no_face}
    return out


def identity_eer(folder: str) -> dict:
    emb, paths, ok = _load(folder)
    rows = read_rows(Path(folder) / "rows.csv", required=("identity",))
    codes = encode_identities(rows["identity"].astype(str).to_numpy()[ok])
    emb = emb[ok]
    gen, imp = genuine_pairs(codes), all_impostor_pairs(codes)
    g = np.einsum("ij,ij->i", emb[gen[:, 0]], emb[gen[:, 1]])
    i = np.einsum("ij,ij->i", emb[imp[:, 0]], emb[imp[:, 1]])
    return {"eer": round(equal_error_rate(g, i), 4), "photos": int(ok.sum()), "genuine_pairs": len(g),
            "impostor_pairs": len(i)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cfp", action="append", default=[], metavar="NAME=FOLDER", help="embed output of CFP's labels.csv")
    ap.add_argument("--identities", action="append", default=[], metavar="NAME=FOLDER",
                    help="embed output of an identity set (e.g. celeba-wild-ids)")
    ap.add_argument("--cfp-root", default=str(shared_dir() / "data" / "cfp"))
    args = ap.parse_args(argv)
    report: dict = {}
    for spec in args.cfp:
        name, _, folder = spec.partition("=")
        report.setdefault(name, {})["cfp"] = cfp_eer(folder, Path(args.cfp_root))
    for spec in args.identities:
        name, _, folder = spec.partition("=")
        report.setdefault(name, {})["identities"] = identity_eer(folder)
    json.dump(report, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
