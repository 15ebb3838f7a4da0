"""End-to-end evaluation reports: FIQA (EDC/pAUC from embeddings) and IQA (correlation with MOS).

``evaluate_fiqa`` is the Python entry point the CLI and the project's evaluation scripts share:
give it recognition embeddings, identity labels and one per-sample quality array per method, and
it builds comparison pairs, fixes each threshold once, and computes every method's EDC under the
same threshold and pairs, so pAUC values in one table are directly comparable.

Two threshold families are reported because they answer different questions (REFERENCE.md):
thresholds from a target FMR show the operational effect, but with a weak recogniser FNMR at a
strict FMR is so high that every EDC is nearly flat; a threshold from a starting FNMR (e.g. 0.1)
keeps enough headroom for the orderings to separate.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import numpy as np

from .edc import (
    DEFAULT_DISCARD_LIMIT,
    EDCResult,
    Threshold,
    fm_edc,
    fmr_at,
    fnm_edc,
    fnmr_at,
    format_rate,
    pair_quality,
    threshold_for_fmr,
    threshold_for_fnmr,
)
from .pairs import DEFAULT_MAX_IMPOSTORS, build_pairs, normalise_embeddings, pair_similarities

DEFAULT_FMRS = (1e-3, 1e-2, 1e-4)
DEFAULT_START_FNMRS = (0.1,)
# An FMR target is only meaningful when enough impostor comparisons exist to observe it:
# at least this many expected false matches (n_impostor * fmr).
MIN_EXPECTED_FALSE_MATCHES = 10


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


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", text).strip("_")


@dataclass
class FIQAReport:
    """Everything an FIQA evaluation produced; ``curves[threshold_label][method]``."""

    n_samples: int
    n_identities: int
    n_genuine: int
    n_impostor: int
    n_impostor_total: int
    impostors_sampled: bool
    discard_limit: float
    seed: int
    thresholds: dict[str, Threshold]
    curves: dict[str, dict[str, EDCResult]]
    fm_curves: dict[str, dict[str, EDCResult]] = field(default_factory=dict)
    nan_qualities: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    n_dropped: int = 0  # samples left out for lack of a usable embedding

    def rows(self) -> list[dict[str, Any]]:
        """One flat record per (threshold, method, EDC kind): the pAUC table."""
        out = []
        for family in (self.curves, self.fm_curves):
            for label, by_method in family.items():
                for method, res in by_method.items():
                    out.append({"threshold_id": label, "method": method, **res.summary()})
        return out

    def to_dict(self) -> dict[str, Any]:
        return json_ready(
            {
                "n_samples": self.n_samples,
                "n_dropped_samples": self.n_dropped,
                "n_identities": self.n_identities,
                "n_genuine_pairs": self.n_genuine,
                "n_impostor_pairs": self.n_impostor,
                "n_impostor_pairs_total": self.n_impostor_total,
                "impostors_sampled": self.impostors_sampled,
                "discard_limit": self.discard_limit,
                "seed": self.seed,
                "thresholds": {
                    label: {"value": t.value, "source": t.source, "target": t.target, "fmr": t.fmr, "fnmr": t.fnmr}
                    for label, t in self.thresholds.items()
                },
                "nan_qualities": self.nan_qualities,
                "notes": self.notes,
                "results": self.rows(),
            }
        )

    def to_markdown(self) -> str:
        imp = f"{self.n_impostor:,} impostor pairs" + (
            f" (random sample of {self.n_impostor_total:,}, seed {self.seed})" if self.impostors_sampled else ""
        )
        lines = [
            "# Face image quality: EDC pAUC",
            "",
            f"{self.n_samples:,} samples of {self.n_identities:,} identities"
            + (f" ({self.n_dropped:,} more dropped: no usable embedding)" if self.n_dropped else "")
            + f"; {self.n_genuine:,} genuine pairs; {imp}.",
            f"pAUC is the stepwise area under the EDC up to discard fraction L = {self.discard_limit:g} "
            "(lower is better); 'minus ideal' subtracts the area under max(0, e0 - x). "
            "The threshold is fixed once per table before discarding (ISO/IEC 29794-1).",
            "",
        ]
        for family, kind_name in ((self.curves, "FNM-EDC (genuine pairs)"), (self.fm_curves, "FM-EDC (impostor pairs)")):
            for label, by_method in family.items():
                t = self.thresholds[label]
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
                    "| method | pAUC | pAUC minus ideal | e0 | FMR | pairs |",
                    "| --- | ---: | ---: | ---: | ---: | ---: |",
                ]
                for method, res in sorted(by_method.items(), key=lambda kv: kv[1].pauc):
                    lines.append(
                        f"| {method} | {_fmt(res.pauc)} | {_fmt(res.pauc_minus_ideal)} | {_fmt(res.e0)} | "
                        f"{_fmt(res.fmr)} | {res.n_pairs:,} |"
                    )
                lines.append("")
        if self.nan_qualities:
            lines += ["Samples without a quality (treated as lowest quality): "
                      + ", ".join(f"{k}: {v}" for k, v in self.nan_qualities.items()), ""]
        if self.notes:
            lines += ["## Notes", ""] + [f"- {n}" for n in self.notes] + [""]
        return "\n".join(lines)

    def write(self, output_dir: str | Path, title: str | None = None) -> dict[str, Path]:
        """Write ``pauc.json``, ``pauc.md``, ``edc_curves.npz`` and one EDC PNG per threshold."""
        from .plots import plot_edc

        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        written: dict[str, Path] = {}
        written["json"] = out / "pauc.json"
        written["json"].write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        written["markdown"] = out / "pauc.md"
        written["markdown"].write_text(self.to_markdown(), encoding="utf-8")
        arrays: dict[str, np.ndarray] = {}
        for prefix, family in (("fnm", self.curves), ("fm", self.fm_curves)):
            for label, by_method in family.items():
                t = self.thresholds[label]
                what = "FNM-EDC" if prefix == "fnm" else "FM-EDC"
                png = out / f"edc_{prefix}_{_slug(label)}.png"
                heading = f"{what}, threshold from {t.label}" + (f" - {title}" if title else "")
                written[f"png:{prefix}:{label}"] = plot_edc(by_method, png, title=heading)
                for method, res in by_method.items():
                    key = f"{prefix}__{_slug(label)}__{_slug(method)}"
                    arrays[f"{key}__x"] = res.discard_fractions
                    arrays[f"{key}__y"] = res.errors
        written["curves"] = out / "edc_curves.npz"
        np.savez_compressed(written["curves"], **arrays)
        return written


def _qualities(
    qualities: Mapping[str, Any], n: int, nan_quality: Literal["lowest", "raise"]
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    if not qualities:
        raise ValueError("give at least one quality method")
    clean: dict[str, np.ndarray] = {}
    nan_counts: dict[str, int] = {}
    for name, values in qualities.items():
        q = np.asarray(values, dtype=np.float64).reshape(-1)
        if q.shape[0] != n:
            raise ValueError(f"quality '{name}' has {q.shape[0]} values but there are {n} embeddings")
        if np.isinf(q).any():
            raise ValueError(f"quality '{name}' holds inf values")
        bad = np.isnan(q)
        if bad.any():
            if nan_quality == "raise":
                raise ValueError(f"quality '{name}' holds {int(bad.sum())} NaN values (first at {int(np.flatnonzero(bad)[0])})")
            # Unscored samples go first, all tied, just below the lowest real quality.
            finite = q[~bad]
            lowest = float(finite.min()) - max(1.0, abs(float(finite.min()))) if finite.size else 0.0
            q = np.where(bad, lowest, q)
            nan_counts[name] = int(bad.sum())
        clean[name] = q
    return clean, nan_counts


def evaluate_fiqa(
    embeddings: Any,
    identities: Any,
    qualities: Mapping[str, Any],
    *,
    fmr_targets: Sequence[float] = DEFAULT_FMRS,
    start_fnmrs: Sequence[float] = DEFAULT_START_FNMRS,
    discard_limit: float = DEFAULT_DISCARD_LIMIT,
    max_impostors: int | None = DEFAULT_MAX_IMPOSTORS,
    seed: int = 0,
    include_fm_edc: bool = False,
    nan_quality: Literal["lowest", "raise"] = "lowest",
    invalid_embeddings: Literal["drop", "raise"] = "drop",
    progress: bool = True,
) -> FIQAReport:
    """FNM-EDCs (and optionally FM-EDCs) of several quality methods on one labelled set.

    ``embeddings`` is ``(N, D)``, ``identities`` ``N`` labels, ``qualities`` maps a method name to
    ``N`` per-sample qualities (higher = better; NaN = the method could not score the sample,
    treated as the lowest quality unless ``nan_quality="raise"``). Samples whose embedding is
    NaN/inf/all-zero (the recogniser found no face) are dropped with a note unless
    ``invalid_embeddings="raise"``. The first FMR target is always
    evaluated (with a note when under-supported); further ones only when the impostor pairs
    number at least ``10 / fmr``.
    """
    try:
        raw = np.asarray(embeddings, dtype=np.float32)
    except (TypeError, ValueError):
        raise ValueError("embeddings must be a numeric (N, D) array") from None
    if raw.ndim != 2:
        raise ValueError(f"embeddings must have shape (N, D), got {raw.shape}")
    n_input = raw.shape[0]
    labels = np.asarray(identities).reshape(-1)
    if labels.shape[0] != n_input:
        raise ValueError(f"{labels.shape[0]} identity labels but {n_input} embeddings")
    for name, values in qualities.items():
        if np.asarray(values).reshape(-1).shape[0] != n_input:
            raise ValueError(f"quality '{name}' has {np.asarray(values).size} values but there are {n_input} embeddings")
    notes: list[str] = []
    usable = np.isfinite(raw).all(axis=1) & (np.abs(raw).sum(axis=1) > 0)
    n_dropped = int(n_input - usable.sum())
    if n_dropped and invalid_embeddings == "drop":
        # Samples the recogniser could not embed (no face found, NaN rows) cannot be compared.
        dropped = np.flatnonzero(~usable)
        notes.append(
            f"dropped {n_dropped:,} sample(s) without a usable embedding (NaN/inf/all-zero rows), "
            f"e.g. rows {dropped[:10].tolist()}"
        )
        raw, labels = raw[usable], labels[usable]
        qualities = {name: np.asarray(v).reshape(-1)[usable] for name, v in qualities.items()}
    emb = normalise_embeddings(raw)
    n = emb.shape[0]
    quals, nan_counts = _qualities(qualities, n, nan_quality)
    pairs = build_pairs(labels, max_impostors=max_impostors, seed=seed)
    if pairs.genuine.shape[0] == 0:
        raise ValueError("no identity has two or more samples, so there are no genuine pairs to evaluate")
    genuine = pair_similarities(emb, pairs.genuine, progress=progress, normalised=True)
    impostor = pair_similarities(emb, pairs.impostor, progress=progress, normalised=True)
    thresholds: dict[str, Threshold] = {}
    n_imp = impostor.shape[0]
    for i, fmr in enumerate(fmr_targets):
        if not 0.0 < fmr < 1.0:
            raise ValueError(f"target FMR must lie in (0, 1), got {fmr}")
        name = format_rate(fmr)
        needed = math.ceil(MIN_EXPECTED_FALSE_MATCHES / fmr)
        if n_imp == 0:
            notes.append(f"FMR {name} skipped: no impostor pairs (a single identity?)")
            continue
        if n_imp < needed:
            if i > 0:
                notes.append(f"FMR {name} skipped: {n_imp:,} impostor pairs, at least {needed:,} needed")
                continue
            notes.append(f"FMR {name} is under-supported: {n_imp:,} impostor pairs, {needed:,} recommended")
        t = threshold_for_fmr(impostor, fmr)
        t = Threshold(value=t.value, source="fmr", target=fmr, fmr=t.fmr, fnmr=fnmr_at(genuine, t.value))
        thresholds[t.label] = t
    for e0 in start_fnmrs:
        t = threshold_for_fnmr(genuine, e0)
        t = Threshold(value=t.value, source="fnmr", target=e0, fnmr=t.fnmr, fmr=fmr_at(impostor, t.value) if n_imp else None)
        thresholds[t.label] = t

    genuine_q = {name: pair_quality(q, pairs.genuine) for name, q in quals.items()}
    impostor_q = {name: pair_quality(q, pairs.impostor) for name, q in quals.items()} if include_fm_edc and n_imp else {}
    curves: dict[str, dict[str, EDCResult]] = {}
    fm_curves: dict[str, dict[str, EDCResult]] = {}
    for label, t in thresholds.items():
        curves[label] = {
            name: fnm_edc(genuine, q, threshold=t, impostor_scores=impostor if n_imp else None, discard_limit=discard_limit)
            for name, q in genuine_q.items()
        }
        if impostor_q and t.source == "fmr":
            fm_curves[label] = {
                name: fm_edc(impostor, q, threshold=t, discard_limit=discard_limit) for name, q in impostor_q.items()
            }
    return FIQAReport(
        n_samples=n,
        n_identities=int(np.unique(labels).shape[0]),
        n_genuine=int(genuine.shape[0]),
        n_impostor=int(n_imp),
        n_impostor_total=pairs.n_impostor_total,
        impostors_sampled=pairs.impostors_sampled,
        discard_limit=float(discard_limit),
        seed=seed,
        thresholds=thresholds,
        curves=curves,
        fm_curves=fm_curves,
        nan_qualities=nan_counts,
        notes=notes,
        n_dropped=n_dropped if invalid_embeddings == "drop" else 0,
    )


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
    """Correlation table as ``correlation.json`` / ``correlation.md`` plus ``scatter.png``."""
    from .correlation import correlation_table
    from .plots import plot_scatter

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        table = correlation_table(pred, mos)
    table = {**table, **(extra or {})}
    if caught:
        table["warnings"] = [str(w.message) for w in caught]
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "correlation.json", "markdown": out / "correlation.md", "png": out / "scatter.png"}
    paths["json"].write_text(json.dumps(json_ready(table), indent=2) + "\n", encoding="utf-8")
    paths["markdown"].write_text(correlation_markdown(table), encoding="utf-8")
    plot_scatter(pred, mos, table, paths["png"], title=title)
    return table, paths
