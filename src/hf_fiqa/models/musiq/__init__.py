"""MUSIQ: configuration, model, image processor; registered with the transformers Auto classes."""

from transformers import AutoConfig, AutoImageProcessor, AutoModel

from .configuration_musiq import MUSIQConfig
from .image_processing_musiq import MUSIQImageProcessor
from .modeling_musiq import MUSIQOutput, MUSIQForImageQualityAssessment, MUSIQPreTrainedModel

AutoConfig.register("musiq", MUSIQConfig, exist_ok=True)
AutoModel.register(MUSIQConfig, MUSIQForImageQualityAssessment, exist_ok=True)
AutoImageProcessor.register(MUSIQConfig, slow_image_processor_class=MUSIQImageProcessor, exist_ok=True)

# save_pretrained then writes auto_map entries and copies these files, so that
# AutoModel/AutoImageProcessor.from_pretrained(..., trust_remote_code=True) work without hf_fiqa installed.
MUSIQConfig.register_for_auto_class()
MUSIQForImageQualityAssessment.register_for_auto_class("AutoModel")
MUSIQImageProcessor.register_for_auto_class("AutoImageProcessor")

__all__ = [
    "MUSIQOutput",
    "MUSIQConfig",
    "MUSIQForImageQualityAssessment",
    "MUSIQImageProcessor",
    "MUSIQPreTrainedModel",
]
