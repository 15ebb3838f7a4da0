"""FIQA evaluation: EDC/pAUC of several quality methods from recognition embeddings, computed, not rendered.

``evaluate_fiqa`` is the Python entry point the CLI and the project's evaluation scripts share:
give it recognition embeddings, identity labels and one per-sample quality array per method, and
it builds comparison pairs, fixes each threshold once, and computes every method's EDC under the
same threshold and pairs, so pAUC values in one table are directly comparable. It returns a
:class:`FIQAReport`; :mod:`hf_fiqa.metrics.report` renders it (JSON, Markdown, EDC plots).

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

import math
import time
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
