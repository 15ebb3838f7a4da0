"""Scoring pipelines: photos and videos in, per-face quality out.

Importing this package registers nothing; :func:`register_pipeline` adds the ``face-image-quality`` task to
``transformers.pipeline`` (:func:`hf_fiqa.register` calls it).
"""

from __future__ import annotations

from .face_quality import FaceQualityAnalyzer, FaceQualityPipeline, ScoredPhoto

TASK = "face-image-quality"


def register_pipeline() -> None:
    """Make ``pipeline("face-image-quality", model=...)`` build a :class:`FaceQualityPipeline` (idempotent)."""
    from transformers import AutoModel
    from transformers.pipelines import PIPELINE_REGISTRY

    if TASK not in PIPELINE_REGISTRY.get_supported_tasks():
        PIPELINE_REGISTRY.register_pipeline(TASK, pipeline_class=FaceQualityPipeline, pt_model=AutoModel, type="image")


__all__ = ["TASK", "FaceQualityAnalyzer", "FaceQualityPipeline", "ScoredPhoto", "register_pipeline"]
