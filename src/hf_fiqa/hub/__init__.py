"""Hub packaging: model cards and the pipeline code shipped beside the weights.

* :func:`write_model_card` (:mod:`hf_fiqa.hub.cards`): README.md with metadata and ``model-index`` results;
* :func:`package_quality_model` (:mod:`hf_fiqa.hub.packaging`): what the export steps do to a saved quality model
  folder to make it Hub-native (``config.custom_pipelines`` and the code of :mod:`hf_fiqa.pipelines.standalone`).
"""

from .cards import TASKS, infer_task, write_model_card
from .packaging import package_quality_model

__all__ = ["TASKS", "infer_task", "package_quality_model", "write_model_card"]
