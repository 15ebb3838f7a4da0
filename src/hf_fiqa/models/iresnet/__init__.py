"""iResNet face-recognition backbone (ArcFace / MagFace) as a transformers model.

Importing this package registers ``model_type="iresnet"`` with ``AutoConfig``/``AutoModel``/
``AutoImageProcessor`` and marks the classes for auto-class code export, so ``save_pretrained``
writes the modeling and processing code next to the weights and
``AutoModel``/``AutoImageProcessor.from_pretrained(dir, trust_remote_code=True)`` work without
hf-fiqa installed. :class:`IResNetImageProcessor` serves MobileFaceNet too.
"""

from transformers import AutoConfig, AutoImageProcessor, AutoModel

from .configuration_iresnet import IRESNET_DEPTHS, IResNetConfig
from .image_processing_iresnet import IResNetImageProcessor
from .modeling_iresnet import IBasicBlock, IResNetModel, IResNetOutput, IResNetPreTrainedModel

AutoConfig.register(IResNetConfig.model_type, IResNetConfig, exist_ok=True)
AutoModel.register(IResNetConfig, IResNetModel, exist_ok=True)
AutoImageProcessor.register(IResNetConfig, slow_image_processor_class=IResNetImageProcessor, exist_ok=True)
IResNetConfig.register_for_auto_class()
IResNetModel.register_for_auto_class("AutoModel")
IResNetImageProcessor.register_for_auto_class("AutoImageProcessor")

__all__ = [
    "IRESNET_DEPTHS",
    "IBasicBlock",
    "IResNetConfig",
    "IResNetImageProcessor",
    "IResNetModel",
    "IResNetOutput",
    "IResNetPreTrainedModel",
]
