"""Genuine comparisons and whether recognizers reject them: a training target that speaks the evaluation's language.

An SDD-FIQA label summarises a face by the distance between its genuine and impostor similarity distributions, drawn
from a handful of the person's other photos (five, in the quick main job), so much of it is the luck of those
photos. FNM-EDC asks something narrower of a quality: a genuine pair, scored by its worse photo, should be rejected
at the operating threshold when that score is low. :func:`genuine_pair_failures` lists those pairs for a labelled
face set (each face, clean or a degraded copy, against every clean photo of the same person but its own source) and
counts how many recognizers reject each at their thresholds; :class:`hf_fiqa.training.array_tasks.PairFailureTask`
fits a quality network to them beside the SDD-FIQA labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from .reference import _unit


@dataclass(frozen=True)
class GenuinePairs:
    """Genuine pairs ``(first[k], second[k])`` of label rows; ``failures[k]`` of ``comparisons`` recognizers reject
    pair ``k``. ``second`` is always a clean photo."""

    first: np.ndarray
    second: np.ndarray
    failures: np.ndarray
    comparisons: int

    def __len__(self) -> int:
        return len(self.first)

    def partners(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each label row's pairs, grouped: ``(order, start, count)`` with the pairs of row ``r`` (as first or second)
        at ``order[start[r]:start[r] + count[r]]`` (``order`` indexes ``2 * len(self)`` slots: pair ``k`` is slot ``k``
        for its first photo and ``len(self) + k`` for its second)."""
        rows = np.concatenate([self.first, self.second])
        order = np.argsort(rows, kind="stable")
        size = int(rows.max()) + 1 if len(rows) else 0
        count = np.bincount(rows, minlength=size)
        start = np.concatenate([[0], np.cumsum(count)[:-1]]) if size else np.zeros(0, dtype=np.int64)
        return order, start, count


def genuine_pair_failures(persons: np.ndarray, sources: np.ndarray, clean: np.ndarray, rows: np.ndarray,
                          embeddings: Mapping[str, np.ndarray], thresholds: Mapping[str, float]) -> GenuinePairs:
    """The genuine pairs among label ``rows`` and how many of the recognizers reject each.

    Per label row: ``persons`` (who), ``sources`` (the photo it was made from: itself for a clean photo, the clean
    photo a degraded copy was cut from), ``clean`` (True for photos as they are) and, per recognizer, its embedding.
    A pair joins a face of ``rows`` with a clean photo of ``rows`` of the same person made from another source (a copy
    is never compared with its own original); two clean photos form one pair, not two. ``thresholds``: each
    recognizer's cosine threshold (its target FMR on impostors); a pair fails for a recognizer below it.
    """
    persons, sources = np.asarray(persons).astype(str), np.asarray(sources)
    clean, rows = np.asarray(clean, dtype=bool), np.asarray(rows)
    if not (len(persons) == len(sources) == len(clean)):
        raise ValueError("genuine_pair_failures: persons, sources and clean need one value per label row")
    if set(embeddings) != set(thresholds) or not embeddings:
        raise ValueError(f"genuine_pair_failures: one threshold per recognizer, got {sorted(thresholds)} for "
                         f"{sorted(embeddings)}")
    order = rows[np.argsort(persons[rows], kind="stable")]
    names = persons[order]
    bounds = np.flatnonzero(np.r_[True, names[1:] != names[:-1], True])
    firsts, seconds = [], []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        members = order[lo:hi]
        references = members[clean[members]]
        i = np.repeat(members, len(references))
        j = np.tile(references, len(members))
        keep = (sources[i] != sources[j]) & ~(clean[i] & (i > j))  # not its own source; a clean pair once
        firsts.append(i[keep])
        seconds.append(j[keep])
    first = np.concatenate(firsts) if firsts else np.zeros(0, dtype=np.int64)
    second = np.concatenate(seconds) if seconds else np.zeros(0, dtype=np.int64)
    failures = np.zeros(len(first), dtype=np.int64)
    for name, embedding in embeddings.items():
        x = _unit(embedding, f"genuine_pair_failures: {name}'s embeddings")
        failures += np.einsum("ij,ij->i", x[first], x[second]) < float(thresholds[name])
    return GenuinePairs(first.astype(np.int64), second.astype(np.int64), failures, len(embeddings))
