"""Quality from any image-quality model that ships an image processor (MANIQA, MUSIQ, ...).

The processor owns every pixel decision (views, resizing, normalisation), so this scorer takes
crops of any size and only batches views, runs the model and averages view scores per crop.
Models trained here report their score in their training labels' units themselves
(``config.label_range``), and a calibrated model its 0-100 ``quality``, so the model alone and the
pipeline give the same number. A model trained on faces cut to another template than ArcFace's
(the SDD-FIQA hybrid sees dlib's chip) names it in ``config.alignment_template``.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

from ..faces.types import AlignedFace


class ModelQualityScorer:
    """:class:`~hf_fiqa.scorers.QualityScorer` around a quality model and its image processor.

    Args:
        model: a model whose output has ``score`` (``(B,)`` or ``(B, K)``: the first is the quality).
        image_processor: its processor; must return ``crop_to_image`` and have ``aggregate_scores``.
        device: where to run; the model's own device by default.
        batch_size: views per forward pass.
        name: the method's name in reports (default: the model type).
    """

    def __init__(self, model: torch.nn.Module, image_processor: Any, device: str | torch.device | None = None,
                 batch_size: int = 16, name: str | None = None):
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.model = model.eval()
        self.image_processor = image_processor
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.model.to(self.device)
        self.dtype = next(model.parameters()).dtype
        self.batch_size = int(batch_size)
        self.name = name or getattr(model.config, "model_type", type(model).__name__)
        self.crop_size = int(getattr(image_processor, "crop_size", getattr(model.config, "image_size", 224)))
        template = getattr(model.config, "alignment_template", None)
        # Template points are stored in pixels of the model's input, as recognizers store theirs.
        self.crop_template = None if template is None else tuple((x / self.crop_size, y / self.crop_size)
                                                                 for x, y in template)

    @torch.inference_mode()
    def score_images(self, images: Sequence[np.ndarray | Image.Image], batch_size: int | None = None) -> np.ndarray:
        """One float64 score per image (any size; the processor makes its views)."""
        if len(images) == 0:
            return np.zeros(0, dtype=np.float64)
        step = int(batch_size or self.batch_size)
        if step <= 0:
            raise ValueError(f"batch_size must be positive, got {step}")
        batch = self.image_processor(list(images), return_tensors="pt")
        # Multi-view processors (MANIQA, MUSIQ) say which image each view came from; a plain one (LightQNet's) makes
        # one view per image.
        owners = batch["crop_to_image"] if "crop_to_image" in batch else torch.arange(len(images))
        # Everything else the processor returns is model input (MUSIQ adds positions, scale ids and a mask).
        inputs = {k: v for k, v in batch.items() if k != "crop_to_image"}
        view_scores = []
        for start in range(0, len(owners), step):
            chunk = {k: v[start:start + step].to(self.device, self.dtype if v.is_floating_point() else None)
                     for k, v in inputs.items()}
            output = self.model(**chunk)
            # A calibrated model reports its 0-100 quality; otherwise its score is the quality.
            view_scores.append((output.score if getattr(output, "quality", None) is None else output.quality).float().cpu())
        scores = torch.cat(view_scores)
        if scores.ndim > 1:  # several outputs: the first is the quality
            scores = scores[:, 0]
        if not hasattr(self.image_processor, "aggregate_scores"):
            return scores.double().numpy()
        return self.image_processor.aggregate_scores(scores, owners).double().numpy()

    def score(self, faces: Sequence[AlignedFace], batch_size: int | None = None) -> np.ndarray:
        return self.score_images([face.crop for face in faces], batch_size=batch_size)
