"""IQA correlation metric for Hugging Face ``evaluate``: SRCC, KRCC, PLCC and RMSE against MOS.

A thin wrapper: the numbers come from :func:`hf_fiqa.metrics.correlation.correlation_table`, so
``evaluate.load(path)`` and the hf-fiqa CLI can never disagree.
"""

import datasets
import evaluate

from hf_fiqa.metrics.correlation import correlation_table

_DESCRIPTION = """
Agreement between predicted image quality and mean opinion scores (MOS): Spearman (SRCC) and
Kendall (KRCC) rank correlation, Pearson correlation (PLCC) and RMSE both on the raw predictions
and after the VQEG four-parameter logistic mapping onto the MOS scale (least-squares line as the
fallback when the logistic fit fails).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `float`): predicted quality, one per image.
    references (`list` of `float`): MOS of the same images.
Returns:
    dict with `n`, `srcc`, `krcc`, `plcc_raw`, `plcc_fitted`, `rmse_raw`, `rmse_fitted`, `fit`
    (`"logistic4"`, `"linear"` or None) and `fit_params`. Constant input gives NaN correlations
    with a RuntimeWarning; NaN values, length mismatch or fewer than 3 points raise ValueError.
Examples:
    >>> metric = evaluate.load("path/to/iqa_correlation")
    >>> metric.compute(predictions=[1.0, 2.0, 3.5, 4.0], references=[10.0, 25.0, 30.0, 41.0])["srcc"]
    1.0
"""

_CITATION = """
@techreport{vqeg2003,
  title = {Final Report from the Video Quality Experts Group on the Validation of Objective Models of Video Quality Assessment, Phase II},
  author = {{Video Quality Experts Group}},
  year = {2003}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class IqaCorrelation(evaluate.Metric):
    """SRCC/KRCC/PLCC/RMSE of quality predictions against MOS."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("float64"), "references": datasets.Value("float64")}
            ),
            # No format="numpy": datasets' numpy formatter casts floats to float32, which would
            # shift scores at thresholds and correlations in the 8th digit. Lists keep float64.
        )

    def _compute(self, predictions, references):
        return correlation_table(predictions, references)
