"""EDC pAUC metric for Hugging Face ``evaluate`` (ISO/IEC 29794-1 error-versus-discard).

A thin wrapper around :func:`hf_fiqa.metrics.edc.fnm_edc` / :func:`hf_fiqa.metrics.edc.fm_edc`:
feed comparison qualities and similarity scores of genuine pairs (or impostor pairs with
``kind="fm"``), and a way to fix the threshold once.
"""

import datasets
import evaluate
import numpy as np

from hf_fiqa.metrics.edc import DEFAULT_DISCARD_LIMIT, fm_edc, fnm_edc

_DESCRIPTION = """
Error-versus-Discard Characteristic (EDC) of a face image quality method and its partial area
(pAUC) up to a discard fraction limit. Comparisons are discarded lowest quality first, ties
together, under a threshold fixed once before discarding; the pAUC is the stepwise area, also
reported minus the ideal area e0^2/2 - max(0, e0 - L)^2/2. Lower is better.
"""

_KWARGS_DESCRIPTION = """
Args:
    qualities (`list` of `float`): quality of each comparison (the lower of its two samples' qualities).
    scores (`list` of `float`): similarity score of each comparison (match when score >= threshold).
    kind (`str`): "fnm" (scores are genuine; error = non-match, default) or "fm" (scores are impostor; error = match).
    threshold (`float`, optional): a fixed threshold.
    target_fmr (`float`, optional): choose the threshold so the FMR on `impostor_scores` is at most this
        (for kind="fm", on `scores` themselves).
    start_fnmr (`float`, optional): choose the threshold so the FNMR on `scores` is at most this (kind="fnm").
    impostor_scores (`list` of `float`, optional): impostor similarities for `target_fmr` and the reported FMR.
    discard_limit (`float`): pAUC limit L, default 0.2.
    return_curve (`bool`): also return the curve's `discard_fractions` and `errors` lists.
Returns:
    dict with `pauc`, `pauc_minus_ideal`, `ideal_pauc`, `e0`, `fmr`, `threshold`, `threshold_source`,
    `threshold_target`, `discard_limit`, `n_pairs`, `kind` (and the curve when asked).
Examples:
    >>> metric = evaluate.load("path/to/edc_pauc")
    >>> metric.compute(qualities=[1, 2, 3, 4], scores=[0.1, 0.9, 0.8, 0.7], threshold=0.5, discard_limit=0.5)["pauc"]
    0.0625
"""

_CITATION = """
@article{schlett2023considerations,
  title = {Considerations on the Evaluation of Biometric Quality Assessment Algorithms},
  author = {Schlett, Torsten and Rathgeb, Christian and Tapia, Juan and Busch, Christoph},
  journal = {arXiv preprint arXiv:2303.13294},
  year = {2023}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class EdcPauc(evaluate.Metric):
    """EDC partial area of a face-quality method under a fixed comparison threshold."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"qualities": datasets.Value("float64"), "scores": datasets.Value("float64")}),
            # No format="numpy": datasets' numpy formatter casts floats to float32, which would
            # shift scores at thresholds and correlations in the 8th digit. Lists keep float64.
        )

    def _compute(
        self,
        qualities,
        scores,
        kind="fnm",
        threshold=None,
        target_fmr=None,
        start_fnmr=None,
        impostor_scores=None,
        discard_limit=DEFAULT_DISCARD_LIMIT,
        return_curve=False,
    ):
        if kind == "fnm":
            result = fnm_edc(
                scores,
                qualities,
                threshold=threshold,
                impostor_scores=impostor_scores,
                target_fmr=target_fmr,
                start_fnmr=start_fnmr,
                discard_limit=discard_limit,
            )
        elif kind == "fm":
            if start_fnmr is not None or impostor_scores is not None:
                raise ValueError("kind='fm' takes the threshold from `threshold` or `target_fmr` on `scores`")
            result = fm_edc(scores, qualities, threshold=threshold, target_fmr=target_fmr, discard_limit=discard_limit)
        else:
            raise ValueError(f"kind must be 'fnm' or 'fm', got {kind!r}")
        out = result.summary()
        if return_curve:
            out["discard_fractions"] = np.asarray(result.discard_fractions).tolist()
            out["errors"] = np.asarray(result.errors).tolist()
        return out
