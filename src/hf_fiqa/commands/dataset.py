"""``hf-fiqa dataset ...``: convert source datasets to Hub-style Parquet repos and publish them.

    hf-fiqa dataset convert NAME ROOT --output DIR [--push REPO_ID] [--overwrite]
    hf-fiqa dataset publish NAME ROOT --push REPO_ID [--output DIR] [--overwrite]
    hf-fiqa dataset rec2parquet ROOT --output DIR [--overwrite]

NAME is one of koniq10k, tid2013, ffhq, ms1m, kface, cfp, identity-folder. The repo folder ``--output`` is written
as a whole: built under a hidden name beside it and renamed into place when complete
(:class:`hf_fiqa.atomic.StagedFolder`), so a failed or interrupted conversion leaves no half-written folder
(and an earlier one as it was). An existing, non-empty ``--output`` is refused unless ``--overwrite``, which
replaces it. ``--push`` uploads the complete folder. Exit codes: 2 for a bad argument or output location
(checked before any work), 1 for a problem in the dataset itself.

Heavy imports happen inside the handlers so ``hf-fiqa --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from ..atomic import StagedFolder
from .options import OutputError, UsageError, check_new_output_folder, fail, is_url, positive_int

DATASET_NAMES = ("koniq10k", "tid2013", "ffhq", "ms1m", "kface", "cfp", "identity-folder")


def _check_output(args) -> None:
    """Before any work: ROOT is not a URL; ``--output`` (when given) is new, empty, or replaced by --overwrite."""
    if is_url(str(args.root)):
        raise UsageError(f"{args.root}: URLs are not supported, download the dataset first")
    if getattr(args, "output", None) is not None:
        check_new_output_folder(args.output, overwrite=args.overwrite, inputs=[args.root])


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
        p.add_argument("--max-shard-size", default=None, help="target Parquet shard size (default 500MB)")
        p.add_argument("--card", default=None,
                       help="card constants for identity-folder: celeba, lfw or identity-folder (default)")
        p.add_argument("--seed", type=int, default=0, help="split seed where splits are drawn (TID2013)")
        p.add_argument("--public", action="store_true", help="create the Hub repo public (default: private)")
        p.add_argument("--num-proc", type=positive_int, default=1, help="processes for ms1m conversion")

    def overwrite(p: argparse.ArgumentParser) -> None:
        p.add_argument("--overwrite", action="store_true", help="replace an existing --output folder (all of it)")

    convert = sub.add_parser("convert", help="write NAME from ROOT as a local dataset repo (Parquet + card)")
    common(convert)
    convert.add_argument("--output", required=True,
                         help="folder to write the repo into, as a whole (must not exist yet, or be empty)")
    convert.add_argument("--push", metavar="REPO_ID", default=None, help="also upload to this Hub dataset repo")
    overwrite(convert)
    convert.set_defaults(func=_convert)

    publish = sub.add_parser("publish", help="convert NAME from ROOT and upload it to the Hub")
    common(publish)
    publish.add_argument("--push", metavar="REPO_ID", required=True, help="Hub dataset repo id (user/name)")
    publish.add_argument("--output", default=None, help="keep the written repo here (default: temporary)")
    overwrite(publish)
    publish.set_defaults(func=_convert)

    rec = sub.add_parser("rec2parquet", help="convert an MS1M-style train.rec/train.idx to sharded Parquet")
    rec.add_argument("root", help="folder with train.rec, train.idx and property (or the .rec file)")
    rec.add_argument("--output", required=True,
                     help="output folder (data/train-*.parquet + README.md), written as a whole")
    rec.add_argument("--max-shard-size", default=None, help="target Parquet shard size (default 500MB)")
    rec.add_argument("--method", choices=("arrow", "datasets"), default="arrow",
                     help="arrow: pyarrow ParquetWriter (faster); datasets: from_generator + to_parquet")
    rec.add_argument("--num-proc", type=positive_int, default=1)
    rec.add_argument("--limit", type=positive_int, default=None, help="convert only the first N images")
    rec.add_argument("--skip-errors", action="store_true")
    overwrite(rec)
    rec.set_defaults(func=_rec2parquet)


def _load(name: str, args, skipped):
    from ..data import cfp, ffhq, identity_folder, kface, koniq, tid2013

    opts = {"skip_errors": args.skip_errors, "skipped": skipped, "check_images": args.check_images}
    if name == "koniq10k":
        return koniq.load_koniq10k(args.root, **opts)
    if name == "tid2013":
        return tid2013.load_tid2013(args.root, seed=args.seed, **opts)
    if name == "ffhq":
        return ffhq.load_ffhq(args.root, **opts)
    if name == "kface":
        return kface.load_kface(args.root, **opts)
    if name == "cfp":
        return cfp.load_cfp(args.root, **opts)
    if name == "identity-folder":
        return identity_folder.load_identity_folder(args.root, **opts)
    raise ValueError(name)


def _card(name: str, card: str | None):
    from ..data.cards import CARDS

    if name == "identity-folder":
        key = card or "identity-folder"
        if key not in CARDS:
            raise UsageError(f"unknown --card {key!r}; choose from {sorted(CARDS)}")
        return CARDS[key]
    return CARDS[name]


def _write_repo(output: str | Path | None, write) -> tuple[Path, tempfile.TemporaryDirectory | None]:
    """``write(folder)`` into ``output`` as a whole (:class:`StagedFolder`), or into a temporary folder when
    ``output`` is None (``dataset publish`` without ``--output``: the caller removes it after the push)."""
    if output is None:
        tmp = tempfile.TemporaryDirectory(prefix="hf_fiqa_publish_")
        try:
            write(Path(tmp.name))
        except BaseException:
            tmp.cleanup()
            raise
        return Path(tmp.name), tmp
    with StagedFolder(output) as staging:
        write(staging)
    return Path(output), None


def _shard_size(args) -> int | str:
    from ..data.rec2parquet import DEFAULT_MAX_SHARD_SIZE

    return args.max_shard_size or DEFAULT_MAX_SHARD_SIZE


def _push(folder: Path, repo_id: str, args) -> None:
    from ..data.publish import push_dataset_folder

    push_dataset_folder(folder, repo_id, private=not getattr(args, "public", False))
    print(f"pushed to https://huggingface.co/datasets/{repo_id}")


def _convert(args) -> int:
    from ..data.errors import DatasetFormatError, SkipLog
    from ..data.publish import write_dataset_repo

    command = f"dataset {args.dataset_command}"
    skipped = SkipLog()
    push = getattr(args, "push", None)
    try:
        _check_output(args)
        info = _card(args.name, args.card)
    except (OutputError, UsageError) as exc:
        return fail(command, exc)
    if args.name == "ms1m":
        return _ms1m_repo(args.root, args.output, push, info, args)
    try:
        data = _load(args.name, args, skipped)
        folder, tmp = _write_repo(args.output, lambda out: write_dataset_repo(
            data, out, info, repo_id=push or args.name, max_shard_size=_shard_size(args)))
    except (DatasetFormatError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    splits = data if hasattr(data, "keys") else {"train": data}
    summary = "rows: " + ", ".join(f"{k}={len(v)}" for k, v in splits.items())
    return _report_and_push(folder, tmp, push, args, [summary, skipped.summary()])


def _ms1m_repo(root, output, push, info, args) -> int:
    from ..data.errors import DatasetFormatError
    from ..data.ms1m import ms1m_features, read_property
    from ..data.publish import card_from_schema
    from ..data.rec2parquet import rec_to_parquet

    results = []

    def write(folder: Path) -> None:
        result = rec_to_parquet(root, folder, max_shard_size=_shard_size(args), num_proc=args.num_proc,
                                skip_errors=args.skip_errors, method=getattr(args, "method", "arrow"),
                                limit=getattr(args, "limit", None))
        rec = Path(root)
        num_classes = read_property((rec.parent if rec.suffix == ".rec" else rec) / "property")[0]
        card = card_from_schema(ms1m_features(num_classes), {"train": result.rows}, info, repo_id=push,
                                split_bytes={"train": result.bytes_written})
        card.save(str(folder / "README.md"))
        results.append(result)

    try:
        folder, tmp = _write_repo(output, write)
    except (DatasetFormatError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    result = results[0]
    summary = f"rows: train={result.rows}, {len(result.files)} shard(s), {result.bytes_written / 1e6:.1f} MB"
    return _report_and_push(folder, tmp, push, args, [summary, result.skipped.summary()])


def _report_and_push(folder: Path, tmp, push: str | None, args, lines: list[str]) -> int:
    """Print what was written, upload it when asked, and remove the temporary folder of a push-only run."""
    try:
        print("\n".join(lines))
        if tmp is None:
            print(f"wrote {folder}")
        if push:
            _push(folder, push, args)
    finally:
        if tmp is not None:
            tmp.cleanup()
    return 0


def _rec2parquet(args) -> int:
    from ..data.cards import MS1M

    try:
        _check_output(args)
    except (OutputError, UsageError) as exc:
        return fail(f"dataset {args.dataset_command}", exc)
    return _ms1m_repo(args.root, args.output, None, MS1M, args)
