"""MANIQA: configuration, model, image processor (:func:`hf_fiqa.register` adds them to the Auto classes)."""

from .configuration_maniqa import MANIQAConfig
from .image_processing_maniqa import MANIQAImageProcessor
from .modeling_maniqa import MANIQAOutput, MANIQAForImageQualityAssessment, MANIQAPreTrainedModel

# What :func:`hf_fiqa.models.register_models` adds to AutoConfig / AutoModel / AutoImageProcessor.
AUTO_CLASSES = (MANIQAConfig, MANIQAForImageQualityAssessment, MANIQAImageProcessor)

__all__ = [
    "AUTO_CLASSES",
    "MANIQAOutput",
    "MANIQAConfig",
    "MANIQAForImageQualityAssessment",
    "MANIQAImageProcessor",
    "MANIQAPreTrainedModel",
]
