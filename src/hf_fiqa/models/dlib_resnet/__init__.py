"""dlib's ResNet face recognizer (``dlib_face_recognition_resnet_model_v1``) as a transformers model.

The classes declare their Auto class (``_auto_class``), so ``save_pretrained`` writes the
modeling/processing code and an ``auto_map`` next to the weights and
``AutoModel/AutoImageProcessor.from_pretrained(dir, trust_remote_code=True)`` work without hf-fiqa
installed; :func:`hf_fiqa.register` adds ``model_type="dlib_resnet"`` to the Auto classes. Convert the released weights with
:func:`~hf_fiqa.models.dlib_resnet.convert_dlib_resnet.convert_dlib_resnet_checkpoint`.
"""

from .configuration_dlib_resnet import (
    DLIB_CHIP_TEMPLATE_150,
    DLIB_STAGE_BLOCKS,
    DLIB_STAGE_WIDTHS,
    DlibResNetConfig,
)
from .image_processing_dlib_resnet import DLIB_IMAGE_MEAN, DlibResNetImageProcessor
from .modeling_dlib_resnet import (
    DlibResidualBlock,
    DlibResNetBackbone,
    DlibResNetModel,
    DlibResNetOutput,
    DlibResNetPreTrainedModel,
    add_zero_padded,
)

# What :func:`hf_fiqa.models.register_models` adds to AutoConfig / AutoModel / AutoImageProcessor.
AUTO_CLASSES = (DlibResNetConfig, DlibResNetModel, DlibResNetImageProcessor)
# What it adds to AutoBackbone: the trunk a quality network can sit on (MANIQAConfig.backbone_config).
BACKBONE_CLASS = DlibResNetBackbone

__all__ = [
    "AUTO_CLASSES",
    "BACKBONE_CLASS",
    "DLIB_CHIP_TEMPLATE_150",
    "DLIB_IMAGE_MEAN",
    "DLIB_STAGE_BLOCKS",
    "DLIB_STAGE_WIDTHS",
    "DlibResNetBackbone",
    "DlibResNetConfig",
    "DlibResNetImageProcessor",
    "DlibResNetModel",
    "DlibResNetOutput",
    "DlibResNetPreTrainedModel",
    "DlibResidualBlock",
    "add_zero_padded",
]
