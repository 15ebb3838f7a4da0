"""``hf-fiqa sdd-fiqa``: the SDD-FIQA hybrid end to end on the photos in ``../shared`` (the main job)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "sdd-fiqa", help="the SDD-FIQA hybrid end to end: recognizers, faces, labels, network, calibration, evaluation",
        description="Runs every stage of hf_fiqa.recipes.sdd_fiqa; finished stages are skipped, so an interrupted "
                    "run continues where it stopped. Ends with the pAUC tables judged by dlib's ResNet "
                    "(OUTPUT/eval/pauc.md) and by MobileFaceNet (OUTPUT/eval-mobilefacenet/pauc.md), EDC plots, the "
                    "label plot, the discard-threshold tables and the calibration check per quality band.")
    p.add_argument("--shared", type=Path, default=None, help="folder with data/ and weights/ (default: $HF_FIQA_SHARED or ../shared)")
    p.add_argument("--output", type=Path, default=Path("runs/sdd-fiqa"), help="run folder (default runs/sdd-fiqa)")
    p.add_argument("--full", action="store_true",
                   help="every photo, more copies and epochs, and the MagFace baseline (the quick run skips it)")
    p.add_argument("--limit", type=int, default=None, help="photos per dataset (smoke runs)")
    p.add_argument("--photos-per-identity", type=int, default=None,
                   help="LFW and CFP photos kept per person (per person and pose in CFP); 0: all (default: 6 in the "
                        "quick run, all with --full)")
    p.add_argument("--trunk", choices=["mobilefacenet", "dlib", "vit"], default="mobilefacenet",
                   help="what MANIQA's head sits on: a frozen recognizer trunk (features cached once) or its own "
                        "ViT trained from scratch (default mobilefacenet)")
    p.add_argument("--labels-from", choices=["both", "dlib", "mobilefacenet"], default="both",
                   help="whose SDD-FIQA labels the network fits (default both: their percentiles averaged)")
    p.add_argument("--objective", choices=["labels+pairs", "labels", "pairs"], default=None,
                   help="what the network fits: the SDD-FIQA labels and the genuine comparisons they summarise "
                        "(default on a recognizer trunk), the labels alone (the ViT's only objective) or the "
                        "comparisons alone")
    p.add_argument("--no-cfp", action="store_true", help="train on LFW alone (CFP's profiles left out)")
    p.add_argument("--image-size", type=int, default=64, help="the ViT trunk's input side (multiple of 8)")
    p.add_argument("--bootstrap", type=int, default=None,
                   help="identity-bootstrap resamples for the CIs (0: none; default: evaluate-fiqa's, 1000)")
    p.add_argument("--ablation", action="store_true",
                   help="also refit the head with one factor of the recipe changed at a time (each other label "
                        "source, without CFP, the other trunk, the trunk's last stage tuned, the other objectives), judged by both recognizers on the validation people "
                        "and the dev set; writes OUTPUT/ablation.md")
    p.add_argument("--seed", type=int, default=0,
                   help="the network's start and batch order; the validation people, copies and labels stay fixed")
    p.add_argument("--seeds", type=int, default=1,
                   help="networks fitted on the same data, seeds SEED, SEED+1, ...: their gains on the dev set and "
                        "the spread in OUTPUT/seeds.md (default 1: the run's own network only)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=run, loads_models=True)


def run(args: argparse.Namespace) -> int:
    from ..paths import shared_dir
    from ..recipes.sdd_fiqa import RecipeConfig, SDDFIQARecipe

    shared = args.shared or shared_dir()
    for needed in (shared / "data" / "lfw" / "labels.csv", shared / "data" / "celeba-wild-ids" / "labels.csv",
                   shared / "weights" / "yunet" / "face_detection_yunet.onnx",
                   shared / "weights" / "mobilefacenet" / "MobileFaceNet.onnx"):
        if not needed.exists():
            print(f"hf-fiqa sdd-fiqa: missing {needed} (pass --shared or set HF_FIQA_SHARED)", file=sys.stderr)
            return 2
    if args.photos_per_identity is not None and args.photos_per_identity < 0:
        print(f"hf-fiqa sdd-fiqa: --photos-per-identity must be >= 0, got {args.photos_per_identity}", file=sys.stderr)
        return 2
    if args.seeds < 1:
        print(f"hf-fiqa sdd-fiqa: --seeds must be >= 1, got {args.seeds}", file=sys.stderr)
        return 2
    if args.image_size <= 0 or args.image_size % 8:
        print(f"hf-fiqa sdd-fiqa: --image-size must be a positive multiple of 8, got {args.image_size}", file=sys.stderr)
        return 2
    chosen = {} if args.bootstrap is None else {"bootstrap": args.bootstrap}
    config = RecipeConfig(shared=shared, output=args.output, quick=not args.full, image_size=args.image_size,
                          trunk=args.trunk, labels_from=args.labels_from, objective=args.objective,
                          with_cfp=not args.no_cfp,
                          photos_per_identity=args.photos_per_identity,
                          seed=args.seed, seeds=args.seeds, limit=args.limit, progress=not args.no_progress, ablation=args.ablation,
                          **chosen)
    result = SDDFIQARecipe(config).run()
    print()
    print((args.output / "eval" / "pauc.md").read_text())
    print((args.output / "eval-mobilefacenet" / "pauc.md").read_text())
    print((args.output / "eval" / "thresholds.md").read_text())
    print((args.output / "eval" / "calibration.md").read_text())
    if "seeds" in result:
        print((args.output / "seeds.md").read_text())
    if "ablation" in result:
        print(result["ablation"])
    print("stage seconds:", config.timings)
    for path in sorted(result["paths"].values()):
        print(f"wrote {path}")
    return 0
