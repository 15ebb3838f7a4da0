"""Model families, one sub-package each (``configuration_*``, ``modeling_*``, ``image_processing_*``, ``convert_*``).

Importing a family registers nothing. :func:`register_models` adds every family to transformers' ``AutoConfig``,
``AutoModel`` and ``AutoImageProcessor``; :func:`hf_fiqa.register` calls it. Saved folders do not need it: they
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
    from transformers import AutoConfig, AutoImageProcessor, AutoModel

    for family in FAMILIES:
        config, model, processor = importlib.import_module(f"{__name__}.{family}").AUTO_CLASSES
        AutoConfig.register(config.model_type, config, exist_ok=True)
        AutoModel.register(config, model, exist_ok=True)
        AutoImageProcessor.register(config, slow_image_processor_class=processor, exist_ok=True)
    _registered = True


__all__ = ["FAMILIES", "register_models"]
