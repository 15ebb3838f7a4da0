"""dlib's ResNet face recognizer (``dlib_face_recognition_resnet_model_v1``) as a transformers model.

Importing this package registers ``model_type="dlib_resnet"`` with ``AutoConfig``, ``AutoModel``
and ``AutoImageProcessor``, and marks the classes for auto-class code export, so
``save_pretrained`` writes the modeling/processing code and an ``auto_map`` next to the
weights and ``AutoModel/AutoImageProcessor.from_pretrained(dir, trust_remote_code=True)`` work
without hf-fiqa installed. Convert the released weights with
:func:`~hf_fiqa.models.dlib_resnet.convert_dlib_resnet.convert_dlib_resnet_checkpoint`.
"""

from transformers import AutoConfig, AutoImageProcessor, AutoModel

from .configuration_dlib_resnet import (
    DLIB_CHIP_TEMPLATE_150,
    DLIB_STAGE_BLOCKS,
    DLIB_STAGE_WIDTHS,
    DlibResNetConfig,
)
from .image_processing_dlib_resnet import DLIB_IMAGE_MEAN, DlibResNetImageProcessor
from .modeling_dlib_resnet import (
    DlibResidualBlock,
    DlibResNetModel,
    DlibResNetOutput,
    DlibResNetPreTrainedModel,
    add_zero_padded,
)

AutoConfig.register(DlibResNetConfig.model_type, DlibResNetConfig, exist_ok=True)
AutoModel.register(DlibResNetConfig, DlibResNetModel, exist_ok=True)
AutoImageProcessor.register(DlibResNetConfig, slow_image_processor_class=DlibResNetImageProcessor, exist_ok=True)
DlibResNetConfig.register_for_auto_class()
DlibResNetModel.register_for_auto_class("AutoModel")
DlibResNetImageProcessor.register_for_auto_class("AutoImageProcessor")

__all__ = [
    "DLIB_CHIP_TEMPLATE_150",
    "DLIB_IMAGE_MEAN",
    "DLIB_STAGE_BLOCKS",
    "DLIB_STAGE_WIDTHS",
    "DlibResNetConfig",
    "DlibResNetImageProcessor",
    "DlibResNetModel",
    "DlibResNetOutput",
    "DlibResNetPreTrainedModel",
    "DlibResidualBlock",
    "add_zero_padded",
]
