"""Photo -> faces -> quality: the ``face-image-quality`` pipeline.

:class:`FaceQualityAnalyzer` does the work with any :class:`~hf_fiqa.scoring.QualityScorer` (MANIQA, MagFace,
a baseline): decode, detect, align at the scorer's crop size, then score the faces of many photos together in
batches. :class:`FaceQualityPipeline` is the transformers face of it, built from a model folder or Hub id::

    import hf_fiqa
    from transformers import pipeline
    scorer = pipeline("face-image-quality", model="org/maniqa-sdd-fiqa", trust_remote_code=True)
    scorer(["group.jpg", "selfie.png"])

Per photo the result is ``{"input", "faces": [{face_index, box, landmarks, detection_score, quality}, ...],
"reason", "error"}`` with faces sorted best quality first. A photo with no face has ``faces == []`` and a
``reason``; an unreadable one has an ``error`` naming it. Neither raises, so one bad file in a list of
thousands costs one record, not the run.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
from tqdm.auto import tqdm
from transformers import Pipeline

from ..faces.alignment import align_faces
from ..faces.types import AlignedFace, DetectedFace
from ..io import ImageReadError, describe, load_image
from ..scoring import QualityScorer
from .model_scorer import ImageQualityModelScorer, scorer_for_model

NO_FACE = "no face detected"


@dataclass
class PreparedPhoto:
    """One input after detection and alignment, waiting for its faces' scores."""

    source: str
    faces: list[DetectedFace] = field(default_factory=list)
    crops: list[AlignedFace] = field(default_factory=list)
    scores: np.ndarray | None = None
    reason: str | None = None
    error: str | None = None


class FaceQualityAnalyzer:
    """Detect, align and score faces with any quality scorer.

    Args:
        scorer: what turns aligned crops into qualities; its ``crop_size`` sets the alignment size.
        detector: a :class:`hf_fiqa.faces.FaceDetector`; built lazily (YuNet, ``detector_weights``) when first needed.
        largest_face_only: keep only the largest face of each photo (portrait / ID-photo use).
        min_face_size: ignore faces whose box is smaller than this many pixels on its shorter side.
        chunk_size: photos decoded and aligned before their faces are scored together; bounds memory.
    """

    def __init__(self, scorer: QualityScorer, detector=None, detector_weights: str | None = None,
                 largest_face_only: bool = False, min_face_size: float = 0.0, chunk_size: int = 64,
                 border: str = "constant"):
        self.scorer = scorer
        self._detector = detector
        self.detector_weights = detector_weights
        self.largest_face_only = largest_face_only
        self.min_face_size = float(min_face_size)
        self.chunk_size = int(chunk_size)
        self.border = border

    @property
    def detector(self):
        if self._detector is None:
            from ..faces.detection import YuNetDetector

            self._detector = YuNetDetector(self.detector_weights)
        return self._detector

    # -- stages -------------------------------------------------------------------------------------------------
    def prepare(self, item: Any) -> PreparedPhoto:
        """Decode, detect and align one photo; failures become a record, never an exception."""
        photo = PreparedPhoto(source=describe(item))
        try:
            rgb = np.asarray(load_image(item))
        except ImageReadError as exc:
            photo.error = str(exc)
            return photo
        faces = self.detector.detect(rgb)
        if not faces:
            photo.reason = NO_FACE
            return photo
        kept = [f for f in faces if f.size >= self.min_face_size]
        if not kept:
            photo.reason = f"no face of at least {self.min_face_size:g} px ({len(faces)} smaller found)"
            return photo
        if self.largest_face_only:
            kept = [max(kept, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))]
        photo.faces = kept
        photo.crops = align_faces(rgb, kept, sizes=(self.scorer.crop_size,), border=self.border)[self.scorer.crop_size]
        return photo

    def score_prepared(self, photos: Sequence[PreparedPhoto]) -> None:
        """Score the faces of several photos in one go (the scorer batches them)."""
        crops = [crop for photo in photos for crop in photo.crops]
        if not crops:
            return
        scores = np.asarray(self.scorer.score(crops), dtype=np.float64)
        start = 0
        for photo in photos:
            photo.scores = scores[start:start + len(photo.crops)]
            start += len(photo.crops)

    @staticmethod
    def to_record(photo: PreparedPhoto) -> dict[str, Any]:
        faces = []
        if photo.scores is not None:
            for index, (face, quality) in enumerate(zip(photo.faces, photo.scores)):
                faces.append({
                    "face_index": index,
                    "box": [round(float(v), 2) for v in face.box],
                    "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in face.landmarks],
                    "detection_score": round(float(face.score), 4),
                    "quality": float(quality),
                })
            faces.sort(key=lambda f: -f["quality"])
        return {"input": photo.source, "faces": faces, "reason": photo.reason, "error": photo.error}

    # -- entry points -------------------------------------------------------------------------------------------
    def iter_records(self, items: Iterable[Any], progress: bool = False, total: int | None = None) -> Iterator[dict]:
        """Yield one record per input, in input order, scoring faces ``chunk_size`` photos at a time."""
        bar = tqdm(total=total, unit="photo", disable=not progress, desc="scoring faces")
        chunk: list[PreparedPhoto] = []
        for item in items:
            chunk.append(self.prepare(item))
            if len(chunk) >= self.chunk_size:
                yield from self._flush(chunk, bar)
                chunk = []
        yield from self._flush(chunk, bar)
        bar.close()

    def _flush(self, chunk: list[PreparedPhoto], bar) -> Iterator[dict]:
        self.score_prepared(chunk)
        for photo in chunk:
            bar.update(1)
            yield self.to_record(photo)

    def score_aligned(self, items: Sequence[Any]) -> list[dict[str, Any]]:
        """Score inputs that already are aligned face crops: one quality per input, no detection."""
        records: list[dict[str, Any]] = [{"input": describe(item), "quality": None, "error": None} for item in items]
        crops, owners = [], []
        for index, item in enumerate(items):
            try:
                image = np.asarray(load_image(item))
            except ImageReadError as exc:
                records[index]["error"] = str(exc)
                continue
            if image.shape[:2] != (self.scorer.crop_size,) * 2 and not isinstance(self.scorer, ImageQualityModelScorer):
                import cv2

                image = cv2.resize(image, (self.scorer.crop_size,) * 2, interpolation=cv2.INTER_AREA)
            crops.append(AlignedFace(crop=image))
            owners.append(index)
        if crops:
            if isinstance(self.scorer, ImageQualityModelScorer):  # the processor handles any crop size
                scores = self.scorer.score_images([c.crop for c in crops])
            else:
                scores = self.scorer.score(crops)
            for index, quality in zip(owners, scores):
                records[index]["quality"] = float(quality)
        return records


class FaceQualityPipeline(Pipeline):
    """transformers pipeline for face image quality; see the module docstring for inputs and outputs.

    Call options: ``aligned`` (inputs are aligned crops: one score each, no detection), ``largest_face_only``,
    ``min_face_size``, ``batch_size`` (faces per forward pass), ``progress``. Constructor-only options:
    ``detector`` (an object with ``detect``), ``detector_weights`` (YuNet ONNX path), ``scorer`` (override the
    model's default scorer).
    """

    def __init__(self, model, image_processor=None, *, detector=None, detector_weights: str | None = None,
                 scorer: QualityScorer | None = None, **kwargs: Any):
        super().__init__(model=model, image_processor=image_processor, **kwargs)
        scorer = scorer or scorer_for_model(self.model, self.image_processor, device=self.device)
        self.analyzer = FaceQualityAnalyzer(scorer, detector=detector, detector_weights=detector_weights)

    def _sanitize_parameters(self, aligned: bool | None = None, largest_face_only: bool | None = None,
                             min_face_size: float | None = None, batch_size: int | None = None,
                             progress: bool | None = None, **kwargs: Any):
        preprocess: dict[str, Any] = {}
        for name, value in (("aligned", aligned), ("largest_face_only", largest_face_only),
                            ("min_face_size", min_face_size), ("batch_size", batch_size), ("progress", progress)):
            if value is not None:
                preprocess[name] = value
        return preprocess, {}, {}

    def __call__(self, inputs: Any, **kwargs: Any) -> dict | list[dict]:
        options = {**self._preprocess_params, **self._sanitize_parameters(**kwargs)[0]}
        single = not isinstance(inputs, (list, tuple))
        items = [inputs] if single else list(inputs)
        # Call options apply to this call only: work on shallow copies (they share the model and detector).
        if not options.get("aligned", False):
            self.analyzer.detector  # build the shared detector once, before copying
        analyzer = copy.copy(self.analyzer)
        analyzer.largest_face_only = bool(options.get("largest_face_only", False))
        analyzer.min_face_size = float(options.get("min_face_size", 0.0))
        if "batch_size" in options and hasattr(analyzer.scorer, "batch_size"):
            analyzer.scorer = copy.copy(analyzer.scorer)
            analyzer.scorer.batch_size = int(options["batch_size"])
        if options.get("aligned", False):
            records = analyzer.score_aligned(items)
        else:
            records = list(analyzer.iter_records(items, progress=bool(options.get("progress", False)), total=len(items)))
        return records[0] if single else records

    # The transformers Pipeline contract, one photo at a time (``__call__`` batches faces across photos instead).
    def preprocess(self, item: Any, **kwargs: Any) -> PreparedPhoto:
        return self.analyzer.prepare(item)

    def _forward(self, photo: PreparedPhoto, **kwargs: Any) -> PreparedPhoto:
        self.analyzer.score_prepared([photo])
        return photo

    def postprocess(self, photo: PreparedPhoto, **kwargs: Any) -> dict[str, Any]:
        return self.analyzer.to_record(photo)
