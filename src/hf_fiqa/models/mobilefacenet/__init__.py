"""MobileFaceNet face embedder as a transformers model.

Importing this package registers ``model_type="mobilefacenet"`` with ``AutoConfig``/``AutoModel``/
``AutoImageProcessor`` and marks the classes for auto-class code export (``trust_remote_code=True``
loading of saved folders without hf-fiqa). Its image processor is the iResNet one: the same
crop -> ``pixel_values`` convention, one implementation.
"""

from transformers import AutoConfig, AutoImageProcessor, AutoModel

from ..iresnet.image_processing_iresnet import IResNetImageProcessor
from .configuration_mobilefacenet import MobileFaceNetConfig
from .modeling_mobilefacenet import MobileFaceNetModel, MobileFaceNetOutput, MobileFaceNetPreTrainedModel

AutoConfig.register(MobileFaceNetConfig.model_type, MobileFaceNetConfig, exist_ok=True)
AutoModel.register(MobileFaceNetConfig, MobileFaceNetModel, exist_ok=True)
AutoImageProcessor.register(MobileFaceNetConfig, slow_image_processor_class=IResNetImageProcessor, exist_ok=True)
MobileFaceNetConfig.register_for_auto_class()
MobileFaceNetModel.register_for_auto_class("AutoModel")
IResNetImageProcessor.register_for_auto_class("AutoImageProcessor")

__all__ = ["MobileFaceNetConfig", "MobileFaceNetModel", "MobileFaceNetOutput", "MobileFaceNetPreTrainedModel"]
