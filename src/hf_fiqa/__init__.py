"""hf-fiqa: no-reference face image quality assessment on the Hugging Face stack.

Importing the package registers its models with the transformers Auto classes and the
``face-image-quality`` task with ``transformers.pipeline``.
"""

__version__ = "0.1.0"

from . import models  # noqa: E402,F401  (Auto-class registration)
from .models.maniqa import MANIQAConfig, MANIQAForImageQualityAssessment, MANIQAImageProcessor  # noqa: E402
from .pipelines import FaceQualityAnalyzer, FaceQualityPipeline  # noqa: E402
from .scorers import QualityScorer, load_scorer  # noqa: E402

__all__ = [
    "FaceQualityAnalyzer",
    "FaceQualityPipeline",
    "MANIQAConfig",
    "MANIQAForImageQualityAssessment",
    "MANIQAImageProcessor",
    "QualityScorer",
    "__version__",
    "load_scorer",
]
