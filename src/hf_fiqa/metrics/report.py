"""Evaluation results rendered as report files: JSON, Markdown tables and figures.

* FIQA (:class:`~hf_fiqa.metrics.evaluation.FIQAReport`): :func:`fiqa_report_dict` (``pauc.json``),
  :func:`fiqa_markdown` (``pauc.md``) and :func:`write_fiqa_report` (those two, one EDC PNG per threshold and
  the curves as ``edc_curves.npz``);
* IQA (:func:`~hf_fiqa.metrics.correlation.correlation_report`): :func:`correlation_markdown` and
  :func:`write_iqa_report` (``correlation.json``, ``correlation.md``, ``scatter.png``);
* :func:`thresholds_markdown`: the discard-threshold table of
  :func:`~hf_fiqa.metrics.calibration.discard_table`.

Nothing here computes a metric; figures are drawn by :mod:`hf_fiqa.metrics.plots`. Every file is written
atomically (:mod:`hf_fiqa.atomic`).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from ..atomic import atomic_write
from .edc import format_rate

if TYPE_CHECKING:
    from .evaluation import FIQAReport


def json_ready(value: Any) -> Any:
    """Recursively turn numpy scalars/arrays into Python values and NaN/inf into ``None``."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_ready(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    v = float(value)
    return f"{v:.{digits}g}" if (v != 0 and abs(v) < 1e-3) else f"{v:.{digits}f}"


def _fmt_signed(value: Any, digits: int = 4) -> str:
    text = _fmt(value, digits)
    return text if text == "n/a" or text.startswith("-") else f"+{text}"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", text).strip("_")


def fiqa_report_dict(report: "FIQAReport") -> dict[str, Any]:
    """The JSON-ready report (``pauc.json``): counts, thresholds, bootstrap settings, notes and every row."""
    return json_ready(
        {
            "n_samples": report.n_samples,
            "n_dropped_samples": report.n_dropped,
            "n_identities": report.n_identities,
            "n_genuine_pairs": report.n_genuine,
            "n_impostor_pairs": report.n_impostor,
            "n_impostor_pairs_total": report.n_impostor_total,
            "impostors_sampled": report.impostors_sampled,
            "discard_limit": report.discard_limit,
            "seed": report.seed,
            "thresholds": {
                label: {"value": t.value, "source": t.source, "target": t.target, "fmr": t.fmr, "fnmr": t.fnmr}
                for label, t in report.thresholds.items()
            },
            "bootstrap": {
                "n_resamples": report.n_bootstrap,
                "ci_level": report.ci_level,
                "seed": report.seed,
                "unit": "identity",
                "n_identities": report.n_bootstrap_identities,
                "threshold": "fixed at the full-set value",
                "comparator": "the other method with the lowest full-set pAUC at that threshold",
                "applies_to": "fnm",
            },
            "nan_qualities": report.nan_qualities,
            "notes": report.notes,
            "results": report.rows(),
        }
    )



def fiqa_markdown(report: "FIQAReport") -> str:
    """The pAUC tables (``pauc.md``): one per EDC kind and threshold, methods best first."""
    imp = f"{report.n_impostor:,} impostor pairs" + (
        f" (random sample of {report.n_impostor_total:,}, seed {report.seed})" if report.impostors_sampled else ""
    )
    lines = [
        "# Face image quality: EDC pAUC",
        "",
        f"{report.n_samples:,} samples of {report.n_identities:,} identities"
        + (f" ({report.n_dropped:,} more dropped: no usable embedding)" if report.n_dropped else "")
        + f"; {report.n_genuine:,} genuine pairs; {imp}.",
        f"pAUC is the stepwise area under the EDC up to discard fraction L = {report.discard_limit:g} "
        "(lower is better); 'minus ideal' subtracts the area under max(0, e0 - x). "
        "The threshold is fixed once per table before discarding (ISO/IEC 29794-1).",
        "",
        "**gain %** = 100 * (pAUC_random - pAUC) / (pAUC_random - pAUC_oracle): 0 % is a random ordering "
        "(pAUC_random = e0 * L, the exact expected stepwise pAUC when quality says nothing about errors), "
        "100 % the ideal ordering of these pairs (pAUC_oracle: errors discarded first, one pair per step; "
        "slightly above the area under max(0, e0 - x), which no stepwise curve reaches); negative is worse "
        "than random. **ΔpAUC vs best other** = pAUC of the method minus the lowest pAUC among the other "
        "methods at that threshold (negative: the method beats all others).",
        _bootstrap_sentence(report),
        "",
    ]
    families = (("fnm", report.curves, "FNM-EDC (genuine pairs)"), ("fm", report.fm_curves, "FM-EDC (impostor pairs)"))
    for kind, family, kind_name in families:
        for label, by_method in family.items():
            t = report.thresholds[label]
            first = next(iter(by_method.values()))
            source = (
                f"target FMR {format_rate(t.target)} on impostor scores" if t.source == "fmr"
                else f"starting FNMR {t.target:g} on genuine scores" if t.source == "fnmr" else "given"
            )
            lines += [
                f"## {kind_name}, threshold from {source}",
                "",
                f"threshold {t.value:.6f}; e0 = {_fmt(first.e0)}; FMR = {_fmt(first.fmr)}; "
                f"L = {first.discard_limit:g}; {first.n_pairs:,} pairs behind each figure.",
                "",
                "| method | pAUC | pAUC minus ideal | e0 | FMR | pairs | gain % | best other | "
                "ΔpAUC vs best other | CI low | CI high | CI excludes 0 |",
                "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | :---: |",
            ]
            for method, res in sorted(by_method.items(), key=lambda kv: kv[1].pauc):
                comp = report.comparison(kind, label, method)
                excludes = comp["ci_excludes_zero"]
                lines.append(
                    f"| {method} | {_fmt(res.pauc)} | {_fmt(res.pauc_minus_ideal)} | {_fmt(res.e0)} | "
                    f"{_fmt(res.fmr)} | {res.n_pairs:,} | {_fmt(100.0 * res.gain, 1)} | "
                    f"{comp['best_other'] or 'n/a'} | {_fmt_signed(comp['delta_pauc_vs_best_other'])} | "
                    f"{_fmt_signed(comp['delta_pauc_ci_low'])} | {_fmt_signed(comp['delta_pauc_ci_high'])} | "
                    f"{'n/a' if excludes is None else ('yes' if excludes else 'no')} |"
                )
            lines.append("")
    if report.nan_qualities:
        lines += ["Samples without a quality (treated as lowest quality): "
                  + ", ".join(f"{k}: {v}" for k, v in report.nan_qualities.items()), ""]
    if report.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in report.notes] + [""]
    return "\n".join(lines)



def _bootstrap_sentence(report: "FIQAReport") -> str:
    level = f"{100 * report.ci_level:g} %"
    if not report.n_bootstrap:
        return "No bootstrap intervals (bootstrap off, or fewer than two methods)."
    return (
        f"CI: {level} percentile interval of ΔpAUC over {report.n_bootstrap:,} identity-bootstrap resamples "
        f"(seed {report.seed}) of the {report.n_bootstrap_identities:,} identities with genuine pairs: identities "
        "drawn with replacement, each genuine pair weighted by how often its identity was drawn, the threshold "
        "kept at its full-set value and the comparator kept as the full-set best other; 'CI excludes 0' marks "
        "a difference unlikely to come from which identities happened to be sampled. FNM-EDCs only."
    )


def _write_text(path: Path, text: str) -> Path:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return path


def write_fiqa_report(report: "FIQAReport", output_dir: str | Path, title: str | None = None) -> dict[str, Path]:
    """Write ``pauc.json``, ``pauc.md``, ``edc_curves.npz`` and one EDC PNG per threshold into ``output_dir``."""
    from .plots import plot_edc

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    written["json"] = _write_text(out / "pauc.json", json.dumps(fiqa_report_dict(report), indent=2) + "\n")
    written["markdown"] = _write_text(out / "pauc.md", fiqa_markdown(report))
    arrays: dict[str, np.ndarray] = {}
    for prefix, family in (("fnm", report.curves), ("fm", report.fm_curves)):
        for label, by_method in family.items():
            t = report.thresholds[label]
            what = "FNM-EDC" if prefix == "fnm" else "FM-EDC"
            png = out / f"edc_{prefix}_{_slug(label)}.png"
            heading = f"{what}, threshold from {t.label}" + (f" - {title}" if title else "")
            written[f"png:{prefix}:{label}"] = plot_edc(by_method, png, title=heading)
            for method, res in by_method.items():
                key = f"{prefix}__{_slug(label)}__{_slug(method)}"
                arrays[f"{key}__x"] = res.discard_fractions
                arrays[f"{key}__y"] = res.errors

    def save_curves(tmp: Path) -> None:
        with open(tmp, "wb") as fh:  # a file object: np.savez would append ".npz" to the temporary name
            np.savez_compressed(fh, **arrays)

    written["curves"] = out / "edc_curves.npz"
    atomic_write(written["curves"], save_curves)
    return written


# -- IQA -------------------------------------------------------------------------------------------------------------
def correlation_markdown(table: Mapping[str, Any], title: str = "Image quality: agreement with MOS") -> str:
    """A Markdown rendering of :func:`~hf_fiqa.metrics.correlation.correlation_table`."""
    rows = [
        ("SRCC", table.get("srcc")),
        ("KRCC", table.get("krcc")),
        ("PLCC (after fit)", table.get("plcc_fitted")),
        ("PLCC (raw)", table.get("plcc_raw")),
        ("RMSE (after fit)", table.get("rmse_fitted")),
        ("RMSE (raw)", table.get("rmse_raw")),
    ]
    lines = [
        f"# {title}",
        "",
        f"{table['n']:,} images; mapping before PLCC/RMSE: {table.get('fit') or 'none (constant input)'}.",
        "",
        "| metric | value |",
        "| --- | ---: |",
    ]
    lines += [f"| {name} | {_fmt(value)} |" for name, value in rows]
    for extra in ("n_unmatched_predictions", "n_unmatched_mos"):
        if extra in table:
            lines.append(f"\n{extra.replace('_', ' ')}: {table[extra]:,}")
    return "\n".join(lines) + "\n"


def write_iqa_report(
    pred: Any, mos: Any, output_dir: str | Path, extra: Mapping[str, Any] | None = None, title: str | None = None
) -> tuple[dict[str, Any], dict[str, Path]]:
    """Correlation table (:func:`~hf_fiqa.metrics.correlation.correlation_report`) as ``correlation.json`` /
    ``correlation.md`` plus ``scatter.png``; returns the table and the paths."""
    from .correlation import correlation_report
    from .plots import plot_scatter

    table = correlation_report(pred, mos, extra)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "correlation.json", "markdown": out / "correlation.md", "png": out / "scatter.png"}
    _write_text(paths["json"], json.dumps(json_ready(table), indent=2) + "\n")
    _write_text(paths["markdown"], correlation_markdown(table))
    plot_scatter(pred, mos, table, paths["png"], title=title)
    return table, paths


# -- discard thresholds ----------------------------------------------------------------------------------------------
def thresholds_markdown(table: list[dict[str, float]], fmr: float, threshold: float,
                        setting: str = "celeba-wild-ids, dlib ResNet") -> str:
    """The rows of :func:`~hf_fiqa.metrics.calibration.discard_table` as a Markdown table; ``setting`` names the
    data and recognizer they were measured with."""
    lines = [f"Discarding faces below a calibrated quality Q ({setting}, FMR {fmr:g}, "
             f"cosine threshold {threshold:.4f}, all genuine pairs of the kept faces):", "",
             "| Q at least | faces removed | genuine pairs kept | FNMR before | FNMR after |", "|---|---|---|---|---|"]
    for row in table:
        lines.append(f"| {row['quality_at_least']:g} | {row['faces_removed_percent']:.1f} % | {row['pairs_kept']} | "
                     f"{row['fnmr_before']:.3f} | {row['fnmr_after']:.3f} |")
    return "\n".join(lines) + "\n"
