"""MANIQA: configuration, model, image processor; registered with the transformers Auto classes."""

from transformers import AutoConfig, AutoImageProcessor, AutoModel

from .configuration_maniqa import MANIQAConfig
from .image_processing_maniqa import MANIQAImageProcessor
from .modeling_maniqa import MANIQAOutput, MANIQAForImageQualityAssessment, MANIQAPreTrainedModel

AutoConfig.register("maniqa", MANIQAConfig, exist_ok=True)
AutoModel.register(MANIQAConfig, MANIQAForImageQualityAssessment, exist_ok=True)
AutoImageProcessor.register(MANIQAConfig, slow_image_processor_class=MANIQAImageProcessor, exist_ok=True)

# save_pretrained then writes auto_map entries and copies these files, so that
# AutoModel/AutoImageProcessor.from_pretrained(..., trust_remote_code=True) work without hf_fiqa installed.
MANIQAConfig.register_for_auto_class()
MANIQAForImageQualityAssessment.register_for_auto_class("AutoModel")
MANIQAImageProcessor.register_for_auto_class("AutoImageProcessor")

__all__ = [
    "MANIQAOutput",
    "MANIQAConfig",
    "MANIQAForImageQualityAssessment",
    "MANIQAImageProcessor",
    "MANIQAPreTrainedModel",
]
