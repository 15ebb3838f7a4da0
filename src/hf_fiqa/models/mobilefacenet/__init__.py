"""MobileFaceNet face embedder as a transformers model.

The classes declare their Auto class (``_auto_class``: ``trust_remote_code=True`` loading of
saved folders without hf-fiqa); :func:`hf_fiqa.register` adds ``model_type="mobilefacenet"`` to the
Auto classes. Its image processor is the iResNet one: the same
crop -> ``pixel_values`` convention, one implementation.
"""

from ..iresnet.image_processing_iresnet import IResNetImageProcessor
from .configuration_mobilefacenet import MobileFaceNetConfig
from .modeling_mobilefacenet import MobileFaceNetBackbone, MobileFaceNetModel, MobileFaceNetOutput, MobileFaceNetPreTrainedModel

# What :func:`hf_fiqa.models.register_models` adds to AutoConfig / AutoModel / AutoImageProcessor.
AUTO_CLASSES = (MobileFaceNetConfig, MobileFaceNetModel, IResNetImageProcessor)
# What it adds to AutoBackbone: the trunk a quality network can sit on (MANIQAConfig.backbone_config).
BACKBONE_CLASS = MobileFaceNetBackbone

__all__ = ["AUTO_CLASSES", "BACKBONE_CLASS", "MobileFaceNetBackbone", "MobileFaceNetConfig", "MobileFaceNetModel", "MobileFaceNetOutput", "MobileFaceNetPreTrainedModel"]
