"""``hf-fiqa evaluate-iqa`` and ``hf-fiqa evaluate-fiqa``: evaluation reports from files.

Each writes its report folder (``--output-dir``) as a whole: built under a hidden name beside it and renamed
into place when complete (:class:`hf_fiqa.atomic.StagedFolder`), so an interrupted run leaves no half-written
folder; an existing, non-empty folder is refused unless ``--overwrite`` (then it is replaced).

Heavy imports (numpy, pandas, scipy, matplotlib) happen inside the handlers so ``hf-fiqa --help``
stays fast; the metric defaults come from :mod:`hf_fiqa.metrics` there too.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..atomic import StagedFolder
from .options import OutputError, UsageError, add_device_args, check_new_output_folder, fail, whole_number

TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".txt")


class InputError(ValueError):
    """A command-line input file is missing, unreadable or lacks what the command needs."""


def read_table(path: str | Path, key_col: str, value_col: str):
    """Read a label/prediction table into a pandas DataFrame.

    ``.csv``/``.tsv``/``.parquet`` need a header naming ``key_col`` and ``value_col``. ``.txt``
    files are headerless two-column lists (``name<TAB>score`` or ``name, score``, as in the
    MANIQA label lists); their columns are named ``key_col`` and ``value_col``.
    """
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such file")
    suffix = p.suffix.lower()
    try:
        if suffix == ".parquet":
            df = pd.read_parquet(p)
        elif suffix == ".tsv":
            df = pd.read_csv(p, sep="\t")
        elif suffix == ".txt":
            df = pd.read_csv(p, sep=r"\s*[,\t]\s*|\s+", header=None, engine="python", names=[key_col, value_col])
        else:
            df = pd.read_csv(p)
    except Exception as exc:  # pandas raises many parser-specific types
        raise InputError(f"{p}: cannot read as a table ({type(exc).__name__}: {exc})") from None
    missing = [c for c in (key_col, value_col) if c not in df.columns]
    if missing:
        raise InputError(f"{p}: missing column(s) {missing}; columns are {list(df.columns)}")
    return df


def _join_predictions(args: argparse.Namespace):
    """Inner join of predictions and MOS on their key columns; returns (pred, mos, extra info)."""
    import numpy as np
    import pandas as pd

    pred_key = args.pred_key_col or args.key_col
    mos_key = args.mos_key_col or args.key_col
    preds = read_table(args.predictions, pred_key, args.pred_col)
    mos = read_table(args.mos, mos_key, args.mos_col)

    def keyed(df: "pd.DataFrame", key: str, value: str, source: str) -> "pd.DataFrame":
        keys = df[key].astype(str)
        if args.basename:
            keys = keys.map(lambda s: Path(s.replace("\\", "/")).name)
        out = pd.DataFrame({"key": keys, value: pd.to_numeric(df[value], errors="coerce")})
        dup = out["key"][out["key"].duplicated()]
        if len(dup):
            raise InputError(f"{source}: {len(dup)} duplicate key(s) in column '{key}', e.g. {dup.iloc[:3].tolist()}")
        return out

    left = keyed(preds, pred_key, args.pred_col, args.predictions)
    right = keyed(mos, mos_key, args.mos_col, args.mos)
    bad_mos = right[args.mos_col].isna()
    if bad_mos.any():
        raise InputError(f"{args.mos}: {int(bad_mos.sum())} non-numeric/missing value(s) in column '{args.mos_col}'")
    merged = left.merge(right, on="key", how="inner", suffixes=("_pred", "_mos"))
    pred_name = args.pred_col if args.pred_col != args.mos_col else f"{args.pred_col}_pred"
    mos_name = args.mos_col if args.pred_col != args.mos_col else f"{args.mos_col}_mos"
    missing_pred = merged[pred_name].isna()
    extra: dict[str, Any] = {
        "n_unmatched_predictions": int(len(left) - len(merged)),
        "n_unmatched_mos": int(len(right) - len(merged)),
        "n_missing_predictions": int(missing_pred.sum()),
        "predictions_file": str(args.predictions),
        "mos_file": str(args.mos),
    }
    merged = merged[~missing_pred]
    if len(merged) == 0:
        raise InputError(
            f"no keys in common between {args.predictions} ('{pred_key}') and {args.mos} ('{mos_key}')"
            + ("" if args.basename else "; try --basename if one side holds paths")
        )
    return merged[pred_name].to_numpy(np.float64), merged[mos_name].to_numpy(np.float64), extra


def _evaluate_iqa(args: argparse.Namespace) -> int:
    from ..metrics.report import write_iqa_report

    pred, mos, extra = _join_predictions(args)
    for name in ("n_unmatched_predictions", "n_unmatched_mos", "n_missing_predictions"):
        if extra[name]:
            print(f"warning: {name.replace('_', ' ')}: {extra[name]}", file=sys.stderr)
    check_new_output_folder(args.output_dir, overwrite=args.overwrite, inputs=[args.predictions, args.mos],
                            what="--output-dir")
    staged = StagedFolder(args.output_dir)
    with staged as tmp:
        table, paths = write_iqa_report(pred, mos, tmp, extra=extra, title=args.title)
    paths = staged.final_paths(paths)
    print(
        f"n={table['n']} SRCC={table['srcc']:.4f} KRCC={table['krcc']:.4f} "
        f"PLCC={table['plcc_fitted']:.4f} (raw {table['plcc_raw']:.4f}) RMSE={table['rmse_fitted']:.4f}"
    )
    for p in paths.values():
        print(f"wrote {p}")
    return 0


def _load_npy(path: str | Path, what: str):
    import numpy as np

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{what} {p}: no such file")
    try:
        return np.load(p, allow_pickle=False)  # never unpickle files we did not write
    except ValueError as exc:
        raise InputError(f"{what} {p}: cannot load without pickle ({exc}); save a plain numeric/str array") from None
    except OSError as exc:
        raise InputError(f"{what} {p}: not a readable .npy file ({exc})") from None


def load_column(path: str | Path, column: str, what: str):
    """A 1-D array from ``.npy`` or a column of a ``.csv``/``.tsv``/``.parquet`` table."""
    import numpy as np
    import pandas as pd

    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".npy":
        arr = _load_npy(p, what)
    elif suffix in (".csv", ".tsv", ".parquet"):
        if not p.is_file():
            raise InputError(f"{what} {p}: no such file")
        try:
            df = pd.read_parquet(p) if suffix == ".parquet" else pd.read_csv(p, sep="\t" if suffix == ".tsv" else ",")
        except Exception as exc:
            raise InputError(f"{what} {p}: cannot read ({type(exc).__name__}: {exc})") from None
        if column not in df.columns:
            raise InputError(f"{what} {p}: no column '{column}'; columns are {list(df.columns)}")
        arr = df[column].to_numpy()
    else:
        raise InputError(f"{what} {p}: unsupported file type '{suffix}' (use .npy, .csv, .tsv or .parquet)")
    arr = np.asarray(arr)
    if arr.ndim != 1:
        if arr.ndim == 2 and 1 in arr.shape:
            arr = arr.reshape(-1)
        else:
            raise InputError(f"{what} {p}: expected a 1-D array, got shape {arr.shape}")
    return arr


def _parse_quality(spec: str, default_col: str) -> tuple[str, str, str]:
    """``NAME=FILE`` or ``NAME=TABLE:COLUMN`` -> (name, path, column)."""
    name, sep, path = spec.partition("=")
    if not sep or not name or not path:
        raise InputError(f"--quality expects NAME=FILE or NAME=TABLE:COLUMN, got '{spec}'")
    head, colon, column = path.rpartition(":")
    if colon and column and Path(head).suffix.lower() in (".csv", ".tsv", ".parquet"):
        return name, head, column
    return name, path, default_col


def load_embeddings(path: str | Path, column: str):
    """``(N, D)`` embeddings from ``.npy`` or a Parquet list column (as written by the embed job)."""
    from ..embedding.store import EmbeddingFormatError, read_embeddings

    try:
        return read_embeddings(path, column)
    except EmbeddingFormatError as exc:
        raise InputError(str(exc)) from None


def _evaluate_fiqa(args: argparse.Namespace) -> int:
    import numpy as np

    from ..metrics.bootstrap import DEFAULT_BOOTSTRAP
    from ..metrics.edc import DEFAULT_DISCARD_LIMIT
    from ..metrics.evaluation import DEFAULT_FMRS, DEFAULT_START_FNMRS, evaluate_fiqa
    from ..metrics.report import write_fiqa_report
    from ..metrics.pairs import DEFAULT_MAX_IMPOSTORS

    emb = load_embeddings(args.embeddings, args.embedding_col)
    identities_file = args.identities or args.embeddings
    if Path(identities_file).suffix.lower() == ".npy" and not args.identities:
        raise InputError("--identities is required when --embeddings is a .npy file")
    identities = load_column(identities_file, args.identity_col, "identities")
    qualities = {}
    for spec in args.quality:
        name, path, column = _parse_quality(spec, args.quality_col)
        if name in qualities:
            raise InputError(f"--quality name '{name}' given twice")
        q = load_column(path, column, f"quality '{name}'")
        try:
            qualities[name] = q.astype(np.float64)
        except (TypeError, ValueError):
            raise InputError(f"quality '{name}' {path}: values are not numeric") from None
    check_new_output_folder(args.output_dir, overwrite=args.overwrite, inputs=[args.embeddings, args.identities],
                            what="--output-dir")
    if args.method or args.components:
        qualities.update(_method_qualities(args, len(emb)))
    if not qualities:
        raise InputError("give at least one --quality, --method or --components")
    report = evaluate_fiqa(
        emb,
        identities,
        qualities,
        fmr_targets=args.fmr or DEFAULT_FMRS,
        start_fnmrs=args.fnmr or DEFAULT_START_FNMRS,
        discard_limit=DEFAULT_DISCARD_LIMIT if args.discard_limit is None else args.discard_limit,
        max_impostors=DEFAULT_MAX_IMPOSTORS if args.max_impostors is None else (args.max_impostors or None),
        seed=args.seed,
        include_fm_edc=args.fm_edc,
        nan_quality=args.nan_quality,
        invalid_embeddings="raise" if args.strict_embeddings else "drop",
        bootstrap=DEFAULT_BOOTSTRAP if args.bootstrap is None else args.bootstrap,
    )
    staged = StagedFolder(args.output_dir)
    with staged as tmp:
        paths = write_fiqa_report(report, tmp, title=args.title)
    paths = staged.final_paths(paths)

    def num(value, spec: str = "+.4f") -> str:
        return "n/a" if value is None or value != value else format(value, spec)

    for row in report.rows():
        line = (
            f"{row['kind'].upper()}-EDC {row['threshold_id']:<11} {row['method']:<24} pAUC={row['pauc']:.4f} "
            f"minus-ideal={row['pauc_minus_ideal']:.4f} e0={row['e0']:.4f} pairs={row['n_pairs']} "
            f"gain={num(row['gain_percent'], '.1f')}%"
        )
        if row["best_other"] is not None:
            line += f" dpAUC-vs-{row['best_other']}={num(row['delta_pauc_vs_best_other'])}"
        if row["delta_pauc_ci_low"] is not None:
            line += (
                f" CI{100 * row['ci_level']:g}=[{num(row['delta_pauc_ci_low'])}, {num(row['delta_pauc_ci_high'])}]"
                + (" excludes 0" if row["ci_excludes_zero"] else " contains 0")
            )
        print(line)
    if report.n_bootstrap:
        print(
            f"bootstrap: {report.n_bootstrap} resamples of {report.n_bootstrap_identities} identities "
            f"in {report.bootstrap_seconds:.2f} s",
            file=sys.stderr,
        )
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    for p in paths.values():
        print(f"wrote {p}")
    return 0


def _method_qualities(args: argparse.Namespace, n_rows: int) -> dict:
    """Score the photos listed in the identities table (``path`` column) with each ``--method`` (and every
    quality component with ``--components``)."""
    import numpy as np

    from ..components import PhotoComponents, load_face_mesh
    from ..faces.detection import YuNetDetector
    from ..pipelines.dataset_quality import score_largest_faces
    from .options import resolve_device
    from ..scorers import load_scorer

    table = args.identities or args.embeddings
    paths = load_column(table, "path", "photo paths")
    if len(paths) != n_rows:
        raise InputError(f"{table} lists {len(paths)} photos but the embeddings have {n_rows} rows")
    root = Path(args.images_root) if args.images_root else Path(table).parent
    paths = [str(p) if Path(str(p)).is_absolute() else str(root / str(p)) for p in paths]
    scorers = {}
    for spec in args.method:
        name, _, model = spec.partition("=")
        if name in scorers:
            raise InputError(f"--method name '{name}' given twice")
        scorers[name] = load_scorer(model or name, device=resolve_device(args.device))
    stage = PhotoComponents(load_face_mesh(args.face_mesh)) if args.components else None
    problems: list[tuple[str, str]] = []
    qualities = score_largest_faces(paths, scorers, YuNetDetector(args.detector_weights), components=stage,
                                    problems=problems)
    if problems:
        path, why = problems[0]
        if len(problems) == len(paths):
            raise InputError(f"no face in any of the {len(paths)} photos of {table} (first: {path}: {why}); "
                             "relative paths start at --images-root (default: the table's folder)")
        print(f"note: {len(problems)} of {len(paths)} photos gave no face, their methods' qualities are NaN "
              f"(first: {path}: {why})", file=sys.stderr)
    for name in [n for n, q in qualities.items() if n.startswith("component:") and np.isnan(q).all()]:
        print(f"note: {name} left out: it could not be computed for any photo (e.g. eyes open without "
              "--face-mesh)", file=sys.stderr)
        del qualities[name]
    return qualities


def _guarded(handler):
    """Turn input problems into a one-line error and exit code 2 instead of a traceback."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except (InputError, OutputError, UsageError, ValueError, OSError) as exc:
            return fail(args.command, exc)

    return run


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a rate in (0, 1), got {text}")
    return value


_resamples = whole_number(0)  # --bootstrap: 0 turns it off


def _limit(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a discard fraction in [0, 1], got {text}")
    return value


def register(subparsers: Any) -> None:
    """Add ``evaluate-iqa`` and ``evaluate-fiqa`` to the ``hf-fiqa`` command."""
    iqa = subparsers.add_parser(
        "evaluate-iqa",
        help="correlate predicted image quality with MOS (SRCC/KRCC/PLCC/RMSE + scatter plot)",
        description="Join predictions and MOS on a key column, then write correlation.json/.md and scatter.png.",
    )
    iqa.add_argument("--predictions", required=True, help="predictions table (.csv/.tsv/.parquet, or headerless .txt)")
    iqa.add_argument("--mos", required=True, help="MOS table, e.g. koniq10k_distributions_sets.csv or a MANIQA label .txt")
    iqa.add_argument("--pred-col", default="score", help="prediction column (default: score)")
    iqa.add_argument("--mos-col", default="MOS", help="MOS column (default: MOS)")
    iqa.add_argument("--key-col", default="image_name", help="join column in both tables (default: image_name)")
    iqa.add_argument("--pred-key-col", help="join column of the predictions, if named differently")
    iqa.add_argument("--mos-key-col", help="join column of the MOS table, if named differently")
    iqa.add_argument("--basename", action="store_true", help="join on file base names (when one side holds paths)")
    iqa.add_argument("--title", help="title for the scatter plot")
    iqa.add_argument("--output-dir", required=True, type=Path,
                     help="report folder, written as a whole (must not exist yet, or be empty)")
    iqa.add_argument("--overwrite", action="store_true", help="replace an existing --output-dir (all of it)")
    iqa.set_defaults(func=_guarded(_evaluate_iqa))

    fiqa = subparsers.add_parser(
        "evaluate-fiqa",
        help="EDC/pAUC of face-quality methods from recognition embeddings (ISO/IEC 29794-1)",
        description=(
            "Build genuine and impostor pairs from identity labels, fix thresholds from target FMRs and a "
            "starting FNMR, and write one EDC PNG per threshold plus pauc.json/pauc.md."
        ),
    )
    fiqa.add_argument(
        "--embeddings", required=True,
        help=".npy (N, D) recognition embeddings, or a .parquet with a list column (see --embedding-col)",
    )
    fiqa.add_argument("--embedding-col", default="embedding", help="embedding column of a .parquet (default: embedding)")
    fiqa.add_argument(
        "--identities",
        help=".npy labels, or .csv/.tsv/.parquet with --identity-col (default: the --embeddings table)",
    )
    fiqa.add_argument("--identity-col", default="identity", help="identity column in a table (default: identity)")
    fiqa.add_argument(
        "--quality", action="append", default=[], metavar="NAME=FILE[:COLUMN]",
        help="per-sample qualities of one method: .npy, or a table column (FILE:COLUMN, default column "
        "--quality-col), rows in embedding order; repeat for several",
    )
    fiqa.add_argument("--quality-col", default="quality", help="quality column in table files (default: quality)")
    fiqa.add_argument(
        "--method", action="append", default=[], metavar="NAME[=MODEL]",
        help="score the photos of the identities table (its 'path' column, e.g. rows.csv of hf-fiqa embed) with a "
        "baseline (inter_eye_distance, face_size, detector_confidence, sharpness, head_pose_5pt, random) or NAME=MODEL (a MANIQA/"
        "MUSIQ folder, or a recognition model for MagFace magnitude); the largest face of each photo, as embed uses",
    )
    fiqa.add_argument("--components", action="store_true",
                      help="add every ISO/IEC 29794-5-style quality component of the same face as a method "
                           "(component:NAME, its 0-100 value; needs the identities table's 'path' column)")
    fiqa.add_argument("--face-mesh", default=None, metavar="FOLDER",
                      help="face-mesh model for --components (else $HF_FIQA_FACE_MESH; without one, eyes open, "
                           "mouth closed and pitch are NaN, i.e. lowest)")
    fiqa.add_argument("--images-root", help="folder the table's relative paths start from (default: the table's folder)")
    fiqa.add_argument("--detector-weights", help="YuNet ONNX for --method (else $HF_FIQA_DETECTOR_WEIGHTS or the Hub)")
    add_device_args(fiqa, dtype=False)
    fiqa.add_argument(
        "--fmr", action="append", type=_rate,
        help="target FMR for a threshold (repeatable; default 1e-3, plus 1e-2 and 1e-4 when enough impostors)",
    )
    fiqa.add_argument("--fnmr", action="append", type=_rate, help="starting FNMR for a threshold (repeatable; default 0.1)")
    fiqa.add_argument("--discard-limit", type=_limit, default=None, help="pAUC discard limit L (default 0.2)")
    fiqa.add_argument(
        "--max-impostors", type=int, default=None,
        help="sample at most this many impostor pairs (default 1,000,000; 0 = use all)",
    )
    fiqa.add_argument("--seed", type=int, default=0, help="seed for impostor sampling and the bootstrap")
    fiqa.add_argument(
        "--bootstrap", type=_resamples, default=None, metavar="N",
        help="identity-bootstrap resamples for the 95%% interval of each method's pAUC difference to the best "
        "other method (FNM-EDCs; threshold kept fixed; default 1000; 0 = off)",
    )
    fiqa.add_argument("--fm-edc", action="store_true", help="also write FM-EDCs over impostor pairs")
    fiqa.add_argument(
        "--nan-quality", choices=["lowest", "raise"], default="lowest",
        help="NaN quality (method could not score a sample): treat as lowest, or fail",
    )
    fiqa.add_argument(
        "--strict-embeddings", action="store_true",
        help="fail on NaN/all-zero embedding rows instead of dropping those samples",
    )
    fiqa.add_argument("--title", help="text appended to plot titles")
    fiqa.add_argument("--output-dir", required=True, type=Path,
                      help="report folder, written as a whole (must not exist yet, or be empty)")
    fiqa.add_argument("--overwrite", action="store_true", help="replace an existing --output-dir (all of it)")
    fiqa.set_defaults(func=_guarded(_evaluate_fiqa), loads_models=True)
