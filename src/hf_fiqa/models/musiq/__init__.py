"""MUSIQ: configuration, model, image processor (:func:`hf_fiqa.register` adds them to the Auto classes)."""

from .configuration_musiq import MUSIQConfig
from .image_processing_musiq import MUSIQImageProcessor
from .modeling_musiq import MUSIQOutput, MUSIQForImageQualityAssessment, MUSIQPreTrainedModel

# What :func:`hf_fiqa.models.register_models` adds to AutoConfig / AutoModel / AutoImageProcessor.
AUTO_CLASSES = (MUSIQConfig, MUSIQForImageQualityAssessment, MUSIQImageProcessor)

__all__ = [
    "AUTO_CLASSES",
    "MUSIQOutput",
    "MUSIQConfig",
    "MUSIQForImageQualityAssessment",
    "MUSIQImageProcessor",
    "MUSIQPreTrainedModel",
]
