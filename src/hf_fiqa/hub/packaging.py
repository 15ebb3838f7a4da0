"""What makes a saved quality model folder Hub-native. The export steps call it after ``save_pretrained``
(``hf-fiqa convert``, training's final save, the SDD-FIQA recipe); the model files never do.

* ``config.custom_pipelines`` declares ``face-image-quality`` (``FaceQualityPipeline``) and
  ``image-classification`` (``QualityBandsPipeline``), both in ``face_quality_pipeline.py``: the same mechanism as
  ``Pipeline.save_pretrained`` of a registered custom pipeline, so
  ``pipeline(task, model=folder_or_repo, trust_remote_code=True)`` works without hf-fiqa;
* that module is :mod:`hf_fiqa.pipelines.standalone`, written beside the weights with the two leaf modules it
  imports there (image decoding :mod:`hf_fiqa.io` and the 0-100 scale :mod:`hf_fiqa.quality_scale`), under the
  names its remote-code imports use;
* a MANIQA on a recognizer's trunk (``backbone_config``) also gets the trunk family's configuration and modeling
  files and two generated modules that name the trunk's classes for MANIQA's own code (``auto_map`` points at
  them), so the folder loads with ``trust_remote_code=True`` where hf-fiqa is not installed;
* a generic model card (README.md) when the folder has none; :func:`hf_fiqa.hub.write_model_card` with the
  run's results replaces it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

PIPELINE_MODULE = "face_quality_pipeline"
_PACKAGE = Path(__file__).resolve().parents[1]
PIPELINE_FILES = {  # name in the saved folder -> source file in this package
    f"{PIPELINE_MODULE}.py": _PACKAGE / "pipelines" / "standalone.py",
    "fiqa_io.py": _PACKAGE / "io.py",
    "fiqa_quality_scale.py": _PACKAGE / "quality_scale.py",
}


def custom_pipelines() -> dict[str, dict[str, Any]]:
    """The ``config.custom_pipelines`` entry (the format ``Pipeline.save_pretrained`` writes)."""
    return {
        "face-image-quality": {"impl": f"{PIPELINE_MODULE}.FaceQualityPipeline", "pt": ["AutoModel"], "tf": [],
                               "type": "image"},
        "image-classification": {"impl": f"{PIPELINE_MODULE}.QualityBandsPipeline", "pt": ["AutoModel"], "tf": [],
                                 "type": "image"},
    }


def ship_pipeline_code(folder: str | Path) -> list[Path]:
    """Copy the pipeline module and the modules it imports into ``folder``."""
    folder = Path(folder)
    copied = []
    for name, source in PIPELINE_FILES.items():
        shutil.copyfile(source, folder / name)
        copied.append(folder / name)
    return copied


def package_quality_model(folder: str | Path, write_card: bool = True) -> None:
    """Make a quality model saved with ``save_pretrained`` Hub-native: declare the pipelines in its
    ``config.json``, ship their code, and write a generic card when there is no README.md."""
    from ..atomic import atomic_write

    folder = Path(folder)
    config_file = folder / "config.json"
    config = json.loads(config_file.read_text(encoding="utf-8"))
    config["custom_pipelines"] = custom_pipelines()
    if config.get("backbone_config"):
        config["auto_map"] = ship_trunk_code(folder, config["backbone_config"]["model_type"])
    text = json.dumps(config, indent=2, sort_keys=True) + "\n"
    atomic_write(config_file, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    ship_pipeline_code(folder)
    if write_card and not (folder / "README.md").exists():
        from .cards import write_model_card

        write_model_card(folder)


TRUNK_MODULE = "maniqa_on_trunk"


def ship_trunk_code(folder: str | Path, model_type: str) -> dict[str, str]:
    """Write the trunk family's ``configuration_*``/``modeling_*`` files and ``configuration_``/``modeling_`` +
    :data:`TRUNK_MODULE` (subclasses of MANIQA's config and model that know the trunk's classes) into ``folder``;
    returns the ``auto_map`` that loads them."""
    import importlib

    from ..models import FAMILIES

    families = {importlib.import_module(f"hf_fiqa.models.{f}").AUTO_CLASSES[0].model_type: f for f in FAMILIES}
    family = families.get(model_type)
    module = importlib.import_module(f"hf_fiqa.models.{family}") if family else None
    if module is None or getattr(module, "BACKBONE_CLASS", None) is None:
        raise ValueError(f"no hf-fiqa model family gives a backbone of model_type {model_type!r}")
    config_class, backbone_class = module.AUTO_CLASSES[0], module.BACKBONE_CLASS
    source = Path(module.__file__).parent
    for name in (f"configuration_{family}.py", f"modeling_{family}.py"):
        shutil.copyfile(source / name, Path(folder) / name)
    header = f'"""Written by hf-fiqa: MANIQA on a {model_type} trunk, loadable with trust_remote_code alone."""\n\n'
    (Path(folder) / f"configuration_{TRUNK_MODULE}.py").write_text(
        header + "from .configuration_maniqa import MANIQAConfig as _MANIQAConfig\n"
        f"from .configuration_{family} import {config_class.__name__}\n\n\n"
        "class MANIQAConfig(_MANIQAConfig):\n"
        f"    trunk_config_classes = {{{model_type!r}: {config_class.__name__}}}\n\n"
        "    def __init__(self, **kwargs):  # its own __init__: transformers would otherwise generate one\n"
        "        super().__init__(**kwargs)\n", encoding="utf-8")
    (Path(folder) / f"modeling_{TRUNK_MODULE}.py").write_text(
        header + f"from .configuration_{TRUNK_MODULE} import MANIQAConfig\n"
        "from .modeling_maniqa import MANIQAForImageQualityAssessment as _MANIQA\n"
        f"from .modeling_{family} import {backbone_class.__name__}\n\n\n"
        "class MANIQAForImageQualityAssessment(_MANIQA):\n"
        "    config_class = MANIQAConfig\n"
        f"    trunk_backbone_classes = {{{model_type!r}: {backbone_class.__name__}}}\n", encoding="utf-8")
    return {"AutoConfig": f"configuration_{TRUNK_MODULE}.MANIQAConfig",
            "AutoModel": f"modeling_{TRUNK_MODULE}.MANIQAForImageQualityAssessment"}
