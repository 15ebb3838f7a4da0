"""Model families, one sub-package each (``configuration_*``, ``modeling_*``, ``image_processing_*``, ``convert_*``).

Importing a family registers nothing. :func:`register_models` adds every family to transformers' ``AutoConfig``,
``AutoModel`` and ``AutoImageProcessor`` (and the recognizer trunks to ``AutoBackbone``); :func:`hf_fiqa.register` calls it. Saved folders do not need it: they
carry their own code (``auto_map``) and load with ``trust_remote_code=True``.
"""

from __future__ import annotations

import importlib

FAMILIES = ("dlib_resnet", "face_mesh", "iresnet", "lightqnet", "maniqa", "mobilefacenet", "musiq")

_registered = False


def register_models() -> None:
    """Add every family's ``AUTO_CLASSES`` to the transformers Auto classes (idempotent)."""
    global _registered
    if _registered:
        return
    from transformers import AutoBackbone, AutoConfig, AutoImageProcessor, AutoModel

    for family in FAMILIES:
        module = importlib.import_module(f"{__name__}.{family}")
        config, model, processor = module.AUTO_CLASSES
        AutoConfig.register(config.model_type, config, exist_ok=True)
        AutoModel.register(config, model, exist_ok=True)
        AutoImageProcessor.register(config, slow_image_processor_class=processor, exist_ok=True)
        if getattr(module, "BACKBONE_CLASS", None) is not None:  # recognizer trunks (MANIQAConfig.backbone_config)
            AutoBackbone.register(config, module.BACKBONE_CLASS, exist_ok=True)
    _registered = True


__all__ = ["FAMILIES", "register_models"]
