"""Figures for evaluation reports: EDC curves, IQA scatter plots, pseudo-labels by degradation, quality histograms.

Figures are drawn on :class:`matplotlib.figure.Figure` with the Agg canvas rather than through
``pyplot``, so plotting works headless and never changes a caller's global backend or state. Each figure is
saved atomically (:func:`hf_fiqa.atomic.save_figure`), in the format of the path's extension.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..atomic import save_figure
from .edc import EDCResult


def _new_figure(width: float = 6.4, height: float = 4.8, layout: str | None = None, dpi: int = 120):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def _step_points(x: np.ndarray, y: np.ndarray, x_max: float, max_points: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    """Resample a step curve on a fine grid when it has more points than pixels.

    A curve over millions of distinct qualities would take matplotlib seconds to draw; sampling
    the step function (value of the last point at or before each grid x) looks identical.
    """
    if x.shape[0] <= max_points:
        return x, y
    grid = np.linspace(0.0, x_max, max_points)
    idx = np.searchsorted(x, grid, side="right") - 1
    return grid, y[np.clip(idx, 0, y.shape[0] - 1)]


def plot_edc(
    curves: Mapping[str, EDCResult],
    path: str | Path,
    title: str | None = None,
    x_max: float | None = None,
) -> Path:
    """Draw several methods' EDCs (same threshold) in one PNG.

    x: fraction of comparisons discarded, y: error rate (FNMR for FNM-EDCs). The legend carries
    each method's pAUC up to the discard limit (marked with a dotted vertical line) and its gain
    toward ideal; the dashed line is the ideal ``max(0, e0 - x)`` whose area ``pauc_minus_ideal``
    subtracts. The legend sits below the axes, outside them, so it never hides a curve; the
    figure grows with the number of methods.
    """
    if not curves:
        raise ValueError("no EDC curves to plot")
    first = next(iter(curves.values()))
    limit = first.discard_limit
    if x_max is None:
        x_max = min(1.0, max(0.5, 2.0 * limit))
    n_entries = len(curves) + 1
    # One legend column: each entry carries pAUC and gain, too long for two columns side by side.
    fig = _new_figure(height=4.4 + 0.17 * n_entries, layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    for name, res in curves.items():
        gain = "n/a" if not np.isfinite(res.gain) else f"{100.0 * res.gain:.1f}%"
        xs_, ys_ = _step_points(res.discard_fractions, res.errors, x_max)
        ax.step(
            xs_,
            ys_,
            where="post",
            linewidth=1.4,
            label=f"{name} (pAUC {res.pauc:.4f}, -ideal {res.pauc_minus_ideal:.4f}, gain {gain})",
        )
    xs = np.linspace(0.0, x_max, 200)
    ax.plot(xs, np.maximum(0.0, first.e0 - xs), "k--", linewidth=1.0, label=f"ideal (e0 {first.e0:.4f})")
    ax.axvline(limit, color="grey", linestyle=":", linewidth=1.0)
    error_name = "FNMR" if first.kind == "fnm" else "FMR"
    ax.set_xlabel("fraction of comparisons discarded (lowest quality first)")
    ax.set_ylabel(error_name)
    ax.set_xlim(0.0, x_max)
    # Scale to what is visible: near x = 1 few comparisons remain and the error jumps around.
    y_top = max(float(r.errors[r.discard_fractions <= x_max].max()) for r in curves.values())
    ax.set_ylim(0.0, max(1e-6, y_top) * 1.05)
    ax.grid(True, alpha=0.3)
    fig.legend(fontsize=7, loc="outside lower center", frameon=False)
    subtitle = f"{first.n_pairs} pairs, threshold {first.threshold:.4f}, L={limit:g}"
    ax.set_title(f"{textwrap.fill(title, 75)}\n{subtitle}" if title else subtitle, fontsize=9)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    return save_figure(fig, out)


def plot_scatter(pred: Any, mos: Any, table: Mapping[str, Any], path: str | Path, title: str | None = None) -> Path:
    """Predictions against MOS with the fitted mapping from :func:`correlation_table` drawn on top."""
    from .correlation import logistic4

    x = np.asarray(pred, dtype=np.float64)
    y = np.asarray(mos, dtype=np.float64)
    fig = _new_figure()
    ax = fig.add_subplot(1, 1, 1)
    ax.scatter(x, y, s=6, alpha=0.4, linewidths=0)
    params = table.get("fit_params")
    if params is not None and np.ptp(x) > 0:
        xs = np.linspace(x.min(), x.max(), 200)
        ys = logistic4(xs, *params) if table.get("fit") == "logistic4" else np.polyval(params, xs)
        ax.plot(xs, ys, "r-", linewidth=1.2, label=f"{table.get('fit')} fit")
        ax.legend(fontsize=8, loc="lower right")
    ax.set_xlabel("prediction")
    ax.set_ylabel("MOS")
    stats = f"n={table['n']}  SRCC {table['srcc']:.4f}  PLCC {table['plcc_fitted']:.4f}  KRCC {table['krcc']:.4f}"
    ax.set_title(f"{title}\n{stats}" if title else stats, fontsize=9)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    return save_figure(fig, out)


def plot_labels(labels: Mapping[str, np.ndarray], path: str | Path,
                title: str = "Pseudo-labels of LFW faces by degradation (dlib ResNet)") -> Path:
    """Label distribution per degradation type and severity: labels must fall as severity rises.

    ``labels`` holds ``quality``, ``kind`` (index into :data:`hf_fiqa.data.degradations.DEGRADATIONS`, -1 for
    the clean photos) and ``severity`` per face; one box plot per degradation, clean photos first.
    """
    from ..data.degradations import DEGRADATIONS, SEVERITIES

    q = np.asarray(labels["quality"])
    clean = q[(labels["kind"] < 0) & np.isfinite(q)]
    columns = (len(DEGRADATIONS) + 1) // 2
    fig = _new_figure(4 * columns, 6.5, layout="constrained", dpi=110)
    axes = fig.subplots(2, columns, sharey=True, squeeze=False)
    for k, (ax, name) in enumerate(zip(axes.flat, DEGRADATIONS)):
        groups = [clean] + [q[(labels["kind"] == k) & (labels["severity"] == s) & np.isfinite(q)] for s in SEVERITIES]
        ax.boxplot(groups, showfliers=False)
        ax.set_xticks(range(1, len(SEVERITIES) + 2), ["clean"] + [str(s) for s in SEVERITIES])
        ax.set_title(name.replace("_", " "))
        ax.set_xlabel("severity")
        ax.grid(alpha=0.3, axis="y")
    for ax in axes[:, 0]:
        ax.set_ylabel("SDD-FIQA pseudo-label")
    fig.suptitle(title)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    return save_figure(fig, out)


def plot_quality_histogram(qualities: Any, path: str | Path, title: str = "Hybrid quality of the CelebA faces") -> Path:
    """Histogram of calibrated 0-100 qualities (NaN, the faces a method could not score, left out)."""
    q = np.asarray(qualities, dtype=np.float64)
    fig = _new_figure(6, 3.5, layout="constrained", dpi=110)
    ax = fig.add_subplot()
    ax.hist(q[np.isfinite(q)], bins=40, range=(0, 100), color="tab:blue", alpha=0.8)
    ax.set_xlabel("calibrated quality (0-100)")
    ax.set_ylabel("faces")
    ax.set_title(title)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    return save_figure(fig, out)
