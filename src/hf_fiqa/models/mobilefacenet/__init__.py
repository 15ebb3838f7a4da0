"""MobileFaceNet face embedder as a transformers model.

Importing this package registers ``model_type="mobilefacenet"`` with ``AutoConfig``/``AutoModel``
and marks the classes for auto-class code export (``trust_remote_code=True`` loading of saved
folders without hf-fiqa).
"""

from transformers import AutoConfig, AutoModel

from .configuration_mobilefacenet import MobileFaceNetConfig
from .modeling_mobilefacenet import MobileFaceNetModel, MobileFaceNetOutput, MobileFaceNetPreTrainedModel

AutoConfig.register(MobileFaceNetConfig.model_type, MobileFaceNetConfig, exist_ok=True)
AutoModel.register(MobileFaceNetConfig, MobileFaceNetModel, exist_ok=True)
MobileFaceNetConfig.register_for_auto_class()
MobileFaceNetModel.register_for_auto_class("AutoModel")

__all__ = ["MobileFaceNetConfig", "MobileFaceNetModel", "MobileFaceNetOutput", "MobileFaceNetPreTrainedModel"]
