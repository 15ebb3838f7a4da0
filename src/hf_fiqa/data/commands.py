"""``hf-fiqa dataset ...``: convert source datasets to Hub-style Parquet repos and publish them.

    hf-fiqa dataset convert NAME ROOT --output DIR [--push REPO_ID]
    hf-fiqa dataset publish NAME ROOT --push REPO_ID [--output DIR]
    hf-fiqa dataset rec2parquet ROOT --output DIR

NAME is one of koniq10k, tid2013, ffhq, ms1m, kface, identity-folder. Heavy imports happen
inside the handlers so ``hf-fiqa --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys

from ..outputs import OutputError, check_output_dir, is_url, positive_int


def _check_output(args) -> None:
    """Before any work: ROOT is not a URL, the output folder is not ROOT and can be created.

    Converting again into the same folder replaces the earlier repo (the writers swap shards in only when the new
    conversion succeeded), so an existing output is not refused here.
    """
    if is_url(str(args.root)):
        raise OutputError(f"{args.root}: URLs are not supported, download the dataset first")
    if getattr(args, "output", None) is not None:
        check_output_dir(args.output, inputs=[args.root], create=False)

DATASET_NAMES = ("koniq10k", "tid2013", "ffhq", "ms1m", "kface", "identity-folder")


def register(subparsers) -> None:
    parser = subparsers.add_parser("dataset", help="convert and publish datasets (KonIQ-10k, TID2013, FFHQ, MS1M, ...)")
    sub = parser.add_subparsers(dest="dataset_command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("name", choices=DATASET_NAMES, help="which loader reads ROOT")
        p.add_argument("root", help="dataset folder (for identity-folder also a path,identity CSV)")
        p.add_argument("--skip-errors", action="store_true",
                       help="skip (and count) missing/corrupt items instead of stopping at the first")
        p.add_argument("--check-images", choices=("none", "header", "decode"), default="header",
                       help="how hard to check image files before converting (default: header)")
        p.add_argument("--max-shard-size", default="500MB", help="target Parquet shard size (default 500MB)")
        p.add_argument("--card", default=None,
                       help="card constants for identity-folder: celeba, lfw or identity-folder (default)")
        p.add_argument("--seed", type=int, default=0, help="split seed where splits are drawn (TID2013)")
        p.add_argument("--public", action="store_true", help="create the Hub repo public (default: private)")
        p.add_argument("--num-proc", type=positive_int, default=1, help="processes for ms1m conversion")

    convert = sub.add_parser("convert", help="write NAME from ROOT as a local dataset repo (Parquet + card)")
    common(convert)
    convert.add_argument("--output", required=True, help="folder to write the repo into")
    convert.add_argument("--push", metavar="REPO_ID", default=None, help="also upload to this Hub dataset repo")
    convert.set_defaults(func=_convert)

    publish = sub.add_parser("publish", help="convert NAME from ROOT and upload it to the Hub")
    common(publish)
    publish.add_argument("--push", metavar="REPO_ID", required=True, help="Hub dataset repo id (user/name)")
    publish.add_argument("--output", default=None, help="keep the written repo here (default: temporary)")
    publish.set_defaults(func=_convert)

    rec = sub.add_parser("rec2parquet", help="convert an MS1M-style train.rec/train.idx to sharded Parquet")
    rec.add_argument("root", help="folder with train.rec, train.idx and property (or the .rec file)")
    rec.add_argument("--output", required=True, help="output folder (data/train-*.parquet + README.md)")
    rec.add_argument("--max-shard-size", default="500MB")
    rec.add_argument("--method", choices=("arrow", "datasets"), default="arrow",
                     help="arrow: pyarrow ParquetWriter (faster); datasets: from_generator + to_parquet")
    rec.add_argument("--num-proc", type=positive_int, default=1)
    rec.add_argument("--limit", type=positive_int, default=None, help="convert only the first N images")
    rec.add_argument("--skip-errors", action="store_true")
    rec.set_defaults(func=_rec2parquet)


def _load(name: str, args, skipped):
    from . import ffhq, identity_folder, kface, koniq, tid2013

    opts = {"skip_errors": args.skip_errors, "skipped": skipped, "check_images": args.check_images}
    if name == "koniq10k":
        return koniq.load_koniq10k(args.root, **opts)
    if name == "tid2013":
        return tid2013.load_tid2013(args.root, seed=args.seed, **opts)
    if name == "ffhq":
        return ffhq.load_ffhq(args.root, **opts)
    if name == "kface":
        return kface.load_kface(args.root, **opts)
    if name == "identity-folder":
        return identity_folder.load_identity_folder(args.root, **opts)
    raise ValueError(name)


def _card(name: str, card: str | None):
    from .cards import CARDS

    if name == "identity-folder":
        key = card or "identity-folder"
        if key not in CARDS:
            raise ValueError(f"unknown --card {key!r}; choose from {sorted(CARDS)}")
        return CARDS[key]
    return CARDS[name]


def _convert(args) -> int:
    from .errors import DatasetFormatError, SkipLog
    from .publish import publish_dataset

    skipped = SkipLog()
    push = getattr(args, "push", None)
    try:
        _check_output(args)
        info = _card(args.name, args.card)
        if args.name == "ms1m":
            return _ms1m_repo(args.root, args.output, push, info, args)
        data = _load(args.name, args, skipped)
        folder = publish_dataset(data, push or args.name, local_dir=args.output, card=info, push=bool(push),
                                 private=not args.public, max_shard_size=args.max_shard_size)
    except (DatasetFormatError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    splits = data if hasattr(data, "keys") else {"train": data}
    print("rows: " + ", ".join(f"{k}={len(v)}" for k, v in splits.items()))
    print(skipped.summary())
    if folder is not None:
        print(f"wrote {folder}")
    if push:
        print(f"pushed to https://huggingface.co/datasets/{push}")
    return 0


def _ms1m_repo(root, output, push, info, args) -> int:
    import tempfile
    from pathlib import Path

    from .ms1m import ms1m_features, read_property
    from .publish import card_from_schema
    from .rec2parquet import rec_to_parquet

    tmp = tempfile.TemporaryDirectory(prefix="hf_fiqa_ms1m_") if output is None else None
    folder = Path(output) if output is not None else Path(tmp.name)
    try:
        result = rec_to_parquet(root, folder, max_shard_size=args.max_shard_size, num_proc=args.num_proc,
                                skip_errors=args.skip_errors, method=getattr(args, "method", "arrow"),
                                limit=getattr(args, "limit", None))
        rec = Path(root)
        num_classes = read_property((rec.parent if rec.suffix == ".rec" else rec) / "property")[0]
        card = card_from_schema(ms1m_features(num_classes), {"train": result.rows}, info, repo_id=push,
                                split_bytes={"train": result.bytes_written})
        card.save(str(folder / "README.md"))
        print(f"rows: train={result.rows}, {len(result.files)} shard(s), {result.bytes_written / 1e6:.1f} MB")
        print(result.skipped.summary())
        if push:
            from huggingface_hub import HfApi

            api = HfApi()
            api.create_repo(push, repo_type="dataset", private=not getattr(args, "public", False), exist_ok=True)
            api.upload_folder(folder_path=str(folder), repo_id=push, repo_type="dataset",
                              commit_message="Upload MS1M conversion with hf-fiqa")
            print(f"pushed to https://huggingface.co/datasets/{push}")
        if output is not None:
            print(f"wrote {folder}")
    finally:
        if tmp is not None:
            tmp.cleanup()
    return 0


def _rec2parquet(args) -> int:
    from .cards import MS1M
    from .errors import DatasetFormatError

    try:
        _check_output(args)
        return _ms1m_repo(args.root, args.output, None, MS1M, args)
    except (DatasetFormatError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
