"""iResNet face-recognition backbone (ArcFace / MagFace) as a transformers model.

Importing this package registers ``model_type="iresnet"`` with ``AutoConfig``/``AutoModel`` and
marks the classes for auto-class code export, so ``save_pretrained`` writes the modeling code
next to the weights and ``AutoModel.from_pretrained(dir, trust_remote_code=True)`` works
without hf-fiqa installed.
"""

from transformers import AutoConfig, AutoModel

from .configuration_iresnet import IRESNET_DEPTHS, IResNetConfig
from .modeling_iresnet import IBasicBlock, IResNetModel, IResNetOutput, IResNetPreTrainedModel

AutoConfig.register(IResNetConfig.model_type, IResNetConfig, exist_ok=True)
AutoModel.register(IResNetConfig, IResNetModel, exist_ok=True)
IResNetConfig.register_for_auto_class()
IResNetModel.register_for_auto_class("AutoModel")

__all__ = [
    "IRESNET_DEPTHS",
    "IBasicBlock",
    "IResNetConfig",
    "IResNetModel",
    "IResNetOutput",
    "IResNetPreTrainedModel",
]
