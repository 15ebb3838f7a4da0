"""Evaluation: IQA correlation with MOS, FIQA error-versus-discard (EDC/pAUC), and the reports rendering them.

Computation: :mod:`.correlation` (IQA), :mod:`.edc`, :mod:`.pairs`, :mod:`.bootstrap` and :mod:`.evaluation`
(FIQA), :mod:`.calibration` (0-100 quality). Rendering: :mod:`.report` (JSON / Markdown files) and :mod:`.plots`.

The methods being evaluated (models, MagFace, weight-free baselines) live in :mod:`hf_fiqa.scorers`.

Only numpy is imported eagerly; scipy, matplotlib and pandas load inside the functions that
need them (the ``eval`` extra).
"""

from .correlation import correlation_table, fit_logistic, logistic4
from .edc import (
    EDCResult,
    Threshold,
    edc_curve,
    fm_edc,
    fmr_at,
    fnm_edc,
    fnmr_at,
    ideal_area,
    pair_quality,
    partial_area,
    threshold_for_fmr,
    threshold_for_fnmr,
)
from .evaluation import FIQAReport, evaluate_fiqa
from .pairs import Pairs, build_pairs, pair_similarities
from .report import write_iqa_report

__all__ = [
    "EDCResult",
    "FIQAReport",
    "Pairs",
    "Threshold",
    "build_pairs",
    "correlation_table",
    "edc_curve",
    "evaluate_fiqa",
    "fit_logistic",
    "fm_edc",
    "fmr_at",
    "fnm_edc",
    "fnmr_at",
    "ideal_area",
    "logistic4",
    "pair_quality",
    "pair_similarities",
    "partial_area",
    "threshold_for_fmr",
    "threshold_for_fnmr",
    "write_iqa_report",
]
