"""Hub packaging: model cards and the pipeline code shipped beside the weights.

* :func:`write_model_card` (:mod:`hf_fiqa.hub.cards`): README.md with metadata and ``model-index`` results;
* :mod:`hf_fiqa.hub.face_quality_pipeline`: the ``face-image-quality`` and ``image-classification`` (quality
  bands) pipelines that quality models declare in ``config.custom_pipelines``; it runs without hf-fiqa;
* :func:`declare_pipelines` / :func:`package_quality_model` (:mod:`hf_fiqa.hub.packaging`): what a quality
  model's ``save_pretrained`` does to make its folder Hub-native.
"""

from .cards import TASKS, infer_task, write_model_card

__all__ = ["TASKS", "infer_task", "write_model_card"]
