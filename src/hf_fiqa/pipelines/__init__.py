"""Scoring pipelines: photos and videos in, per-face quality out."""

from transformers import AutoModel
from transformers.pipelines import PIPELINE_REGISTRY

from .face_quality import FaceQualityAnalyzer, FaceQualityPipeline, ScoredPhoto

PIPELINE_REGISTRY.register_pipeline(
    "face-image-quality", pipeline_class=FaceQualityPipeline, pt_model=AutoModel, type="image"
)

__all__ = ["FaceQualityAnalyzer", "FaceQualityPipeline", "ScoredPhoto"]
