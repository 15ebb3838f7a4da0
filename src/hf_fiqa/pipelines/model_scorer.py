"""Quality scorers around loaded models, and the choice of scorer for a given model.

An image-quality model (MANIQA, or anything returning ``.score`` and shipped with an image processor) scores
aligned crops through its processor; a recognition model scores by embedding magnitude (MagFace). The face
pipeline only sees the :class:`hf_fiqa.scoring.QualityScorer` interface either way.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from PIL import Image

from ..faces.types import AlignedFace
from ..scoring import QualityScorer

RECOGNITION_MODEL_TYPES = ("iresnet", "mobilefacenet")


class ImageQualityModelScorer:
    """Scores images or aligned face crops with an image-quality model and its image processor.

    A model trained by ``train.py`` carries ``label_range`` in its config (the MOS or pseudo-label range its
    [0, 1] targets were scaled from); its scores are mapped back to those units.

    Crops go through the processor's deterministic view policy (for aligned faces: ``resize``, which is the
    identity at the processor's crop size), in batches of ``batch_size`` views, and view scores are averaged
    per image.
    """

    def __init__(self, model: torch.nn.Module, image_processor, device: str | torch.device | None = None,
                 batch_size: int = 16, name: str | None = None):
        self.model = model.eval()
        self.image_processor = image_processor
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.model.to(self.device)
        self.dtype = next(model.parameters()).dtype
        self.batch_size = int(batch_size)
        self.name = name or getattr(model.config, "model_type", type(model).__name__)
        self.crop_size = int(getattr(image_processor, "crop_size", getattr(model.config, "image_size", 224)))

    @torch.inference_mode()
    def score_images(self, images: Sequence[np.ndarray | Image.Image]) -> np.ndarray:
        """One float64 score per image (any size; the processor makes its views)."""
        if len(images) == 0:
            return np.zeros(0, dtype=np.float64)
        batch = self.image_processor(list(images), return_tensors="pt")
        owners = batch["crop_to_image"]
        # Everything else the processor returns is model input (MUSIQ adds positions, scale ids and a mask).
        inputs = {k: v for k, v in batch.items() if k != "crop_to_image"}
        view_scores = []
        for start in range(0, len(owners), self.batch_size):
            chunk = {k: v[start:start + self.batch_size].to(self.device, self.dtype if v.is_floating_point() else None)
                     for k, v in inputs.items()}
            view_scores.append(self.model(**chunk).score.float().cpu())
        scores = torch.cat(view_scores)
        if scores.ndim > 1:  # several outputs: the first is the quality
            scores = scores[:, 0]
        scores = self.image_processor.aggregate_scores(scores, owners).double().numpy()
        # Models trained here regress labels scaled to [0, 1]; report them in the label's own units.
        label_range = getattr(self.model.config, "label_range", None)
        if label_range is not None:
            low, high = label_range
            scores = scores * (high - low) + low
        return scores

    def score(self, faces: Sequence[AlignedFace]) -> np.ndarray:
        return self.score_images([face.crop for face in faces])


def scorer_for_model(model: torch.nn.Module, image_processor=None, device: str | torch.device | None = None,
                     batch_size: int = 16) -> QualityScorer:
    """The right :class:`QualityScorer` for a loaded model: MagFace magnitude for recognition models,
    the model's own score (through ``image_processor``) for image-quality models."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type in RECOGNITION_MODEL_TYPES:
        from ..models.magface_quality import MagFaceQualityScorer

        if device is not None:
            model.to(device)
        return MagFaceQualityScorer(model, device=device, batch_size=batch_size)
    if image_processor is None:
        raise ValueError(f"model of type {model_type!r} needs its image processor to score images")
    return ImageQualityModelScorer(model, image_processor, device=device, batch_size=batch_size)


def load_quality_scorer(name_or_path: str, device: str | None = None, batch_size: int = 16) -> QualityScorer:
    """A scorer from a model folder / Hub id (MANIQA, MagFace iResNet, ...) or a baseline name.

    Baselines: ``inter_eye_distance``, ``face_size``, ``detector_confidence``, ``sharpness``, ``random``.
    """
    from ..metrics.baselines import BASELINES, make_baseline

    if name_or_path in BASELINES:
        return make_baseline(name_or_path)
    from transformers import AutoConfig, AutoImageProcessor, AutoModel

    config = AutoConfig.from_pretrained(name_or_path, trust_remote_code=True)
    model = AutoModel.from_pretrained(name_or_path, trust_remote_code=True)
    processor = None
    if config.model_type not in RECOGNITION_MODEL_TYPES:
        processor = AutoImageProcessor.from_pretrained(name_or_path, trust_remote_code=True)
    return scorer_for_model(model, processor, device=device, batch_size=batch_size)
