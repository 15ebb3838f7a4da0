"""LightQNet (Chen et al., 2021; MIT), a published 1.8 MB face-quality network, as a transformers model.

``hf-fiqa convert lightqnet lightqnet-dm100.pb DST`` reads the released frozen TensorFlow graph's constants (with
the GraphDef protobuf schema that the ``tensorboard`` package ships; no TensorFlow) into :class:`LightQNetModel`.
Its image processor is the iResNet one (BGR, ``(x - 128) / 128``, 96 px); the config's ``alignment_template``
holds LightQNet's 3-point alignment (eye centres, mouth centre).
"""

from ..iresnet.image_processing_iresnet import IResNetImageProcessor
from .configuration_lightqnet import LIGHTQNET_DM100_BLOCKS, LIGHTQNET_TEMPLATE, LightQNetConfig
from .modeling_lightqnet import LightQNetModel, LightQNetOutput, LightQNetPreTrainedModel

AUTO_CLASSES = (LightQNetConfig, LightQNetModel, IResNetImageProcessor)

__all__ = ["AUTO_CLASSES", "LIGHTQNET_DM100_BLOCKS", "LIGHTQNET_TEMPLATE", "LightQNetConfig", "LightQNetModel",
           "LightQNetOutput", "LightQNetPreTrainedModel"]
