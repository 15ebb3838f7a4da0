"""What makes a saved quality model folder Hub-native; run by MANIQA's and MUSIQ's ``save_pretrained``.

* ``config.custom_pipelines`` declares ``face-image-quality`` (:class:`FaceQualityPipeline`) and
  ``image-classification`` (:class:`QualityBandsPipeline`), both in ``face_quality_pipeline.py``, which is
  copied beside the weights with ``fiqa_io.py`` (image decoding) - the same mechanism as
  ``Pipeline.save_pretrained`` of a registered custom pipeline, so
  ``pipeline(task, model=folder_or_repo, trust_remote_code=True)`` works without hf-fiqa;
* a generic model card (README.md) when the folder has none; :func:`hf_fiqa.hub.write_model_card` with the
  run's results replaces it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

PIPELINE_MODULE = "face_quality_pipeline"
PIPELINE_FILES = {  # name in the saved folder -> source file in this package
    f"{PIPELINE_MODULE}.py": Path(__file__).with_name(f"{PIPELINE_MODULE}.py"),
    "fiqa_io.py": Path(__file__).resolve().parents[1] / "io.py",
}


def custom_pipelines() -> dict[str, dict[str, Any]]:
    """The ``config.custom_pipelines`` entry (the format ``Pipeline.save_pretrained`` writes)."""
    return {
        "face-image-quality": {"impl": f"{PIPELINE_MODULE}.FaceQualityPipeline", "pt": ["AutoModel"], "tf": [],
                               "type": "image"},
        "image-classification": {"impl": f"{PIPELINE_MODULE}.QualityBandsPipeline", "pt": ["AutoModel"], "tf": [],
                                 "type": "image"},
    }


def declare_pipelines(config: Any) -> None:
    """Set ``config.custom_pipelines`` (before the config is written)."""
    config.custom_pipelines = custom_pipelines()


def ship_pipeline_code(folder: str | Path) -> list[Path]:
    """Copy the pipeline module and its sibling import into ``folder``."""
    folder = Path(folder)
    copied = []
    for name, source in PIPELINE_FILES.items():
        shutil.copyfile(source, folder / name)
        copied.append(folder / name)
    return copied


def package_quality_model(folder: str | Path, write_card: bool = True) -> None:
    """After ``save_pretrained``: ship the pipeline code, and a generic card when there is no README.md."""
    folder = Path(folder)
    ship_pipeline_code(folder)
    if write_card and not (folder / "README.md").exists():
        from .cards import write_model_card

        write_model_card(folder)
