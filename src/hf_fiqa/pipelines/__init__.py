"""Scoring pipelines: photos and videos in, per-face quality out."""

from transformers import AutoModel
from transformers.pipelines import PIPELINE_REGISTRY

from .face_quality import FaceQualityAnalyzer, FaceQualityPipeline, PreparedPhoto
from .model_scorer import ImageQualityModelScorer, scorer_for_model

PIPELINE_REGISTRY.register_pipeline(
    "face-image-quality", pipeline_class=FaceQualityPipeline, pt_model=AutoModel, type="image"
)

__all__ = ["FaceQualityAnalyzer", "FaceQualityPipeline", "ImageQualityModelScorer", "PreparedPhoto", "scorer_for_model"]
