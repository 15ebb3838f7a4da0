"""iResNet face-recognition backbone (ArcFace / MagFace) as a transformers model.

The classes declare their Auto class (``_auto_class``), so ``save_pretrained`` writes the
modeling and processing code next to the weights and
``AutoModel``/``AutoImageProcessor.from_pretrained(dir, trust_remote_code=True)`` work without
hf-fiqa installed; :func:`hf_fiqa.register` adds ``model_type="iresnet"`` to the Auto classes. :class:`IResNetImageProcessor` serves MobileFaceNet too.
"""

from .configuration_iresnet import IRESNET_DEPTHS, IResNetConfig
from .image_processing_iresnet import IResNetImageProcessor
from .modeling_iresnet import IBasicBlock, IResNetModel, IResNetOutput, IResNetPreTrainedModel

# What :func:`hf_fiqa.models.register_models` adds to AutoConfig / AutoModel / AutoImageProcessor.
AUTO_CLASSES = (IResNetConfig, IResNetModel, IResNetImageProcessor)

__all__ = [
    "AUTO_CLASSES",
    "IRESNET_DEPTHS",
    "IBasicBlock",
    "IResNetConfig",
    "IResNetImageProcessor",
    "IResNetModel",
    "IResNetOutput",
    "IResNetPreTrainedModel",
]
