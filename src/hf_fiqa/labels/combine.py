"""One label from several recognizers' SDD-FIQA labels: what quality should mean when no single recognizer is the
judge.

Each recognizer's labels are first turned into percentiles among the faces (0-100, ties averaged), then averaged.
Percentiles, because the recognizers' raw labels live on different scales (their genuine and impostor similarity
distributions differ), so a plain mean would let the recognizer with the wider spread decide; a face that every
recognizer finds hard is low under all of them and stays low in the mean, while one recognizer's quirk is halved.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
from scipy.stats import rankdata


def percentiles(values: np.ndarray) -> np.ndarray:
    """``values`` as mid-rank percentiles in (0, 100) among the finite ones; NaN stays NaN."""
    values = np.asarray(values, dtype=np.float64)
    out = np.full(values.shape, np.nan)
    finite = np.isfinite(values)
    if finite.any():
        out[finite] = 100.0 * (rankdata(values[finite]) - 0.5) / finite.sum()
    return out


def combine_labels(labels: Mapping[str, np.ndarray]) -> np.ndarray:
    """The mean of every recognizer's labels as percentiles; NaN where any recognizer has no label."""
    if not labels:
        raise ValueError("combine_labels needs the labels of at least one recognizer")
    lengths = {name: len(values) for name, values in labels.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"combine_labels: every recognizer must label the same faces, got lengths {lengths}")
    return np.mean([percentiles(values) for values in labels.values()], axis=0)
