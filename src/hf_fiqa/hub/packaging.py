"""What makes a saved quality model folder Hub-native. The export steps call it after ``save_pretrained``
(``hf-fiqa convert``, training's final save, the SDD-FIQA recipe); the model files never do.

* ``config.custom_pipelines`` declares ``face-image-quality`` (``FaceQualityPipeline``) and
  ``image-classification`` (``QualityBandsPipeline``), both in ``face_quality_pipeline.py``: the same mechanism as
  ``Pipeline.save_pretrained`` of a registered custom pipeline, so
  ``pipeline(task, model=folder_or_repo, trust_remote_code=True)`` works without hf-fiqa;
* that module is :mod:`hf_fiqa.pipelines.standalone`, written beside the weights with the two leaf modules it
  imports there (image decoding :mod:`hf_fiqa.io` and the 0-100 scale :mod:`hf_fiqa.quality_scale`), under the
  names its remote-code imports use;
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
    text = json.dumps(config, indent=2, sort_keys=True) + "\n"
    atomic_write(config_file, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    ship_pipeline_code(folder)
    if write_card and not (folder / "README.md").exists():
        from .cards import write_model_card

        write_model_card(folder)
