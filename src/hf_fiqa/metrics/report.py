"""End-to-end evaluation reports: FIQA (EDC/pAUC from embeddings) and IQA (correlation with MOS).

``evaluate_fiqa`` is the Python entry point the CLI and the project's evaluation scripts share:
give it recognition embeddings, identity labels and one per-sample quality array per method, and
it builds comparison pairs, fixes each threshold once, and computes every method's EDC under the
same threshold and pairs, so pAUC values in one table are directly comparable.

Two threshold families are reported because they answer different questions (REFERENCE.md):
thresholds from a target FMR show the operational effect, but with a weak recogniser FNMR at a
strict FMR is so high that every EDC is nearly flat; a threshold from a starting FNMR (e.g. 0.1)
keeps enough headroom for the orderings to separate.

To make a ranking trustworthy, every (threshold, method) row also carries

* ``gain``: ``(pAUC_random - pAUC) / (pAUC_random - pAUC_oracle)``, 0 % for a random ordering
  (``pAUC_random = e0 * L``, the exact expectation of the stepwise pAUC) and 100 % for the ideal
  ordering of these comparisons (``pAUC_oracle``, errors discarded first one by one); see
  :mod:`hf_fiqa.metrics.edc`.
* ``delta_pauc_vs_best_other``: ``pAUC(method) - pAUC(best other)``, where the best other is the
  other method with the lowest pAUC at that threshold on the full set (negative: this method
  beats every other one).
* For FNM-EDCs, its 95 % identity-bootstrap percentile interval (``delta_pauc_ci_low`` /
  ``delta_pauc_ci_high``) and ``ci_excludes_zero``: identities are resampled with replacement,
  each genuine pair weighted by how often its identity was drawn, the threshold kept at its
  full-set value and the comparator kept as the full-set best other (see
  :mod:`hf_fiqa.metrics.bootstrap`).
"""

from __future__ import annotations

import json
import math
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import numpy as np

from .bootstrap import (
    DEFAULT_BOOTSTRAP,
    DEFAULT_CI_LEVEL,
    bootstrap_paucs,
    bootstrap_rng,
    identity_counts,
    percentile_interval,
)
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
from .pairs import DEFAULT_MAX_IMPOSTORS, build_pairs, encode_identities, normalise_embeddings, pair_similarities

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


def _fmt_signed(value: Any, digits: int = 4) -> str:
    text = _fmt(value, digits)
    return text if text == "n/a" or text.startswith("-") else f"+{text}"


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
    # comparisons["fnm" | "fm"][threshold_label][method]: best other, delta, bootstrap interval
    comparisons: dict[str, dict[str, dict[str, dict[str, Any]]]] = field(default_factory=dict)
    n_bootstrap: int = 0  # identity resamples behind the intervals (0: none computed)
    ci_level: float = DEFAULT_CI_LEVEL
    n_bootstrap_identities: int = 0  # identities owning genuine pairs: the resampling units
    bootstrap_seconds: float = 0.0  # wall time of the bootstrap (not written to the reports)

    def comparison(self, kind: str, label: str, method: str) -> dict[str, Any]:
        """Best other method, pAUC difference and its interval for one row (empty values if none)."""
        empty = {
            "best_other": None,
            "delta_pauc_vs_best_other": None,
            "delta_pauc_ci_low": None,
            "delta_pauc_ci_high": None,
            "ci_excludes_zero": None,
        }
        return {**empty, **self.comparisons.get(kind, {}).get(label, {}).get(method, {})}

    def rows(self) -> list[dict[str, Any]]:
        """One flat record per (threshold, method, EDC kind): the pAUC table.

        Besides :meth:`EDCResult.summary` each record holds ``gain_percent`` (``100 * gain``),
        ``best_other``, ``delta_pauc_vs_best_other``, ``delta_pauc_ci_low``/``_high``,
        ``ci_excludes_zero``, ``ci_level`` and ``n_bootstrap`` (interval values are ``None`` for
        FM-EDCs, with a single method, or when the bootstrap is off).
        """
        out = []
        for kind, family in (("fnm", self.curves), ("fm", self.fm_curves)):
            for label, by_method in family.items():
                for method, res in by_method.items():
                    comp = self.comparison(kind, label, method)
                    has_ci = comp["delta_pauc_ci_low"] is not None
                    out.append({
                        "threshold_id": label,
                        "method": method,
                        **res.summary(),
                        "gain_percent": 100.0 * res.gain,
                        **comp,
                        "ci_level": self.ci_level if has_ci else None,
                        "n_bootstrap": self.n_bootstrap if has_ci else 0,
                    })
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
                "bootstrap": {
                    "n_resamples": self.n_bootstrap,
                    "ci_level": self.ci_level,
                    "seed": self.seed,
                    "unit": "identity",
                    "n_identities": self.n_bootstrap_identities,
                    "threshold": "fixed at the full-set value",
                    "comparator": "the other method with the lowest full-set pAUC at that threshold",
                    "applies_to": "fnm",
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
            "**gain %** = 100 * (pAUC_random - pAUC) / (pAUC_random - pAUC_oracle): 0 % is a random ordering "
            "(pAUC_random = e0 * L, the exact expected stepwise pAUC when quality says nothing about errors), "
            "100 % the ideal ordering of these pairs (pAUC_oracle: errors discarded first, one pair per step; "
            "slightly above the area under max(0, e0 - x), which no stepwise curve reaches); negative is worse "
            "than random. **ΔpAUC vs best other** = pAUC of the method minus the lowest pAUC among the other "
            "methods at that threshold (negative: the method beats all others).",
            self._bootstrap_sentence(),
            "",
        ]
        families = (("fnm", self.curves, "FNM-EDC (genuine pairs)"), ("fm", self.fm_curves, "FM-EDC (impostor pairs)"))
        for kind, family, kind_name in families:
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
                    "| method | pAUC | pAUC minus ideal | e0 | FMR | pairs | gain % | best other | "
                    "ΔpAUC vs best other | CI low | CI high | CI excludes 0 |",
                    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | :---: |",
                ]
                for method, res in sorted(by_method.items(), key=lambda kv: kv[1].pauc):
                    comp = self.comparison(kind, label, method)
                    excludes = comp["ci_excludes_zero"]
                    lines.append(
                        f"| {method} | {_fmt(res.pauc)} | {_fmt(res.pauc_minus_ideal)} | {_fmt(res.e0)} | "
                        f"{_fmt(res.fmr)} | {res.n_pairs:,} | {_fmt(100.0 * res.gain, 1)} | "
                        f"{comp['best_other'] or 'n/a'} | {_fmt_signed(comp['delta_pauc_vs_best_other'])} | "
                        f"{_fmt_signed(comp['delta_pauc_ci_low'])} | {_fmt_signed(comp['delta_pauc_ci_high'])} | "
                        f"{'n/a' if excludes is None else ('yes' if excludes else 'no')} |"
                    )
                lines.append("")
        if self.nan_qualities:
            lines += ["Samples without a quality (treated as lowest quality): "
                      + ", ".join(f"{k}: {v}" for k, v in self.nan_qualities.items()), ""]
        if self.notes:
            lines += ["## Notes", ""] + [f"- {n}" for n in self.notes] + [""]
        return "\n".join(lines)

    def _bootstrap_sentence(self) -> str:
        level = f"{100 * self.ci_level:g} %"
        if not self.n_bootstrap:
            return "No bootstrap intervals (bootstrap off, or fewer than two methods)."
        return (
            f"CI: {level} percentile interval of ΔpAUC over {self.n_bootstrap:,} identity-bootstrap resamples "
            f"(seed {self.seed}) of the {self.n_bootstrap_identities:,} identities with genuine pairs: identities "
            "drawn with replacement, each genuine pair weighted by how often its identity was drawn, the threshold "
            "kept at its full-set value and the comparator kept as the full-set best other; 'CI excludes 0' marks "
            "a difference unlikely to come from which identities happened to be sampled. FNM-EDCs only."
        )

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
    bootstrap: int = DEFAULT_BOOTSTRAP,
    ci_level: float = DEFAULT_CI_LEVEL,
) -> FIQAReport:
    """FNM-EDCs (and optionally FM-EDCs) of several quality methods on one labelled set.

    ``embeddings`` is ``(N, D)``, ``identities`` ``N`` labels, ``qualities`` maps a method name to
    ``N`` per-sample qualities (higher = better; NaN = the method could not score the sample,
    treated as the lowest quality unless ``nan_quality="raise"``). Samples whose embedding is
    NaN/inf/all-zero (the recogniser found no face) are dropped with a note unless
    ``invalid_embeddings="raise"``. The first FMR target is always
    evaluated (with a note when under-supported); further ones only when the impostor pairs
    number at least ``10 / fmr``.

    Every EDC carries ``gain`` (0 = random ordering, 1 = ideal ordering; see
    :mod:`hf_fiqa.metrics.edc`). With two or more methods, each row also gets the pAUC difference
    to the best other method (lowest pAUC among the others, full set) and, for FNM-EDCs, the
    ``ci_level`` percentile interval of that difference over ``bootstrap`` identity resamples
    (seeded by ``seed``; ``bootstrap=0`` disables it): identities with genuine pairs are drawn
    with replacement, each genuine pair weighted by its identity's draw count, with the threshold
    FIXED at its full-set value (see :mod:`hf_fiqa.metrics.bootstrap`).
    """
    if int(bootstrap) < 0:
        raise ValueError(f"bootstrap must be >= 0 resamples, got {bootstrap}")
    if not 0.0 < ci_level < 1.0:
        raise ValueError(f"ci_level must lie in (0, 1), got {ci_level}")
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
    comparisons = {
        "fnm": {label: _best_other_deltas(by_method) for label, by_method in curves.items()},
        "fm": {label: _best_other_deltas(by_method) for label, by_method in fm_curves.items()},
    }
    n_boot, n_boot_ids, boot_seconds = 0, 0, 0.0
    if bootstrap and len(genuine_q) >= 2 and curves:
        started = time.perf_counter()
        pair_codes = encode_identities(labels)[pairs.genuine[:, 0]]
        _, pair_identity = np.unique(pair_codes, return_inverse=True)
        n_boot_ids = int(pair_identity.max()) + 1
        counts = identity_counts(n_boot_ids, int(bootstrap), bootstrap_rng(seed))
        errors = {label: genuine < thresholds[label].value for label in curves}
        resampled = bootstrap_paucs(pair_identity, genuine_q, errors, discard_limit, counts)
        for label, by_method in comparisons["fnm"].items():
            for method, comp in by_method.items():
                diff = resampled[label][method] - resampled[label][comp["best_other"]]
                low, high = percentile_interval(diff, ci_level)
                comp.update(delta_pauc_ci_low=low, delta_pauc_ci_high=high, ci_excludes_zero=bool(low > 0 or high < 0))
        n_boot, boot_seconds = int(bootstrap), time.perf_counter() - started
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
        comparisons=comparisons,
        n_bootstrap=n_boot,
        ci_level=float(ci_level),
        n_bootstrap_identities=n_boot_ids,
        bootstrap_seconds=boot_seconds,
    )


def _best_other_deltas(by_method: Mapping[str, EDCResult]) -> dict[str, dict[str, Any]]:
    """For each method: the other method with the lowest pAUC (first in input order on ties) and the difference."""
    out: dict[str, dict[str, Any]] = {}
    for method, res in by_method.items():
        others = [(r.pauc, name) for name, r in by_method.items() if name != method]
        if not others:
            continue
        best = min(others, key=lambda pn: pn[0])[1]  # min keeps the first of equal pAUCs
        out[method] = {"best_other": best, "delta_pauc_vs_best_other": res.pauc - by_method[best].pauc}
    return out


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
