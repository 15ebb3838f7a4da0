"""Photo -> faces -> quality: the ``face-image-quality`` pipeline.

:class:`FaceQualityAnalyzer` does the work with any :class:`~hf_fiqa.scorers.QualityScorer` (a quality model,
MagFace, a baseline): the :class:`~hf_fiqa.faces.FaceCropper` decodes, detects and aligns at the scorer's crop,
then the faces of many photos are scored together in batches. :class:`FaceQualityPipeline` is the transformers
face of it, built from a model folder or Hub id::

    import hf_fiqa
    from transformers import pipeline

    hf_fiqa.register()  # adds the task to transformers.pipeline
    scorer = pipeline("face-image-quality", model="org/maniqa-sdd-fiqa", trust_remote_code=True)
    scorer(["group.jpg", "selfie.png"])

Per photo the result is ``{"input", "faces": [{face_index, box, landmarks, detection_score, quality}, ...],
"reason", "error"}`` with faces sorted best quality first. With ``components=True`` each face also has
``components`` (``{name: {native, component, reason, note}}``, :mod:`hf_fiqa.components`) and ``concerns`` (the
lowest components in words), and with an ``acceptance`` rule ``acceptable``, ``failed`` and ``unchecked``. A photo with no face has ``faces == []`` and a
``reason``; an unreadable one has an ``error`` naming it. Neither raises, so one bad file in a list of
thousands costs one record, not the run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
from tqdm.auto import tqdm
from transformers import Pipeline

from ..components import AcceptanceRule, PhotoComponents, as_records, concerns, load_face_mesh
from ..faces.cropper import NO_FACE, CroppedPhoto, CropTask, FaceCropper
from ..faces.types import AlignedFace
from ..io import ImageReadError, describe, load_image
from ..scorers import QualityScorer, crop_spec, scorer_for_model
from ..sharding import prepared_batches

__all__ = ["NO_FACE", "FaceQualityAnalyzer", "FaceQualityPipeline", "ScoredPhoto"]


@dataclass
class ScoredPhoto:
    """One cropped photo and, once its batch has run, one score per kept face."""

    photo: CroppedPhoto
    scores: np.ndarray | None = None


def scorer_name(scorer: Any) -> str:
    """How a scorer is named in messages: its name and, for a loaded model, where it came from."""
    name = str(getattr(scorer, "name", type(scorer).__name__))
    model = getattr(scorer, "model", None) or getattr(getattr(scorer, "embedder", None), "model", None)
    source = getattr(getattr(model, "config", None), "_name_or_path", "") or getattr(model, "name_or_path", "")
    return f"'{name}' ({source})" if source and str(source) != name else f"'{name}'"


class FaceQualityAnalyzer:
    """Detect, align and score faces with any quality scorer.

    Args:
        scorer: what turns aligned crops into qualities; its crop size and template set the alignment.
        detector, detector_weights, border: passed to the :class:`~hf_fiqa.faces.FaceCropper` (YuNet by default).
        largest_face_only: default face selection: only the largest face of each photo (portrait / ID use).
        min_face_size: default filter: ignore faces whose box is smaller than this on its shorter side.
        chunk_size: photos decoded and aligned before their faces are scored together; bounds memory.
        components: add the quality components to every face record (see the module docstring).
        face_mesh: the dense-landmark model for the components (a :func:`~hf_fiqa.components.load_face_mesh`
            folder or Hub id, or a loaded landmarker); default ``$HF_FIQA_FACE_MESH``, else 5-point geometry only.
        acceptance: an :class:`~hf_fiqa.components.AcceptanceRule`, ``"default"`` or a rule string
            (``"quality>=60,eyes_open>=40"``); implies ``components``.

    Every method takes the selection options as arguments too, so one analyzer serves calls with
    different options without being changed.
    """

    def __init__(self, scorer: QualityScorer, detector: Any = None, detector_weights: str | None = None,
                 largest_face_only: bool = False, min_face_size: float = 0.0, chunk_size: int = 64,
                 border: str = "constant", components: bool = False, face_mesh: Any = None,
                 acceptance: AcceptanceRule | str | None = None):
        self.scorer = scorer
        self.cropper = FaceCropper(detector, detector_weights, border=border)
        self.largest_face_only = largest_face_only
        self.min_face_size = float(min_face_size)
        self.chunk_size = int(chunk_size)
        self.acceptance = AcceptanceRule.parse(acceptance) if isinstance(acceptance, str) else acceptance
        self.components: PhotoComponents | None = None
        if components or self.acceptance is not None:
            # a loaded landmarker as given; a folder / Hub id, or None for $HF_FIQA_FACE_MESH, through load_face_mesh
            self.components = PhotoComponents(face_mesh if hasattr(face_mesh, "run_faces") else load_face_mesh(face_mesh))

    @property
    def detector(self) -> Any:
        return self.cropper.detector

    # -- stages -------------------------------------------------------------------------------------------------
    def prepare(self, item: Any, largest_face_only: bool | None = None, min_face_size: float | None = None) -> ScoredPhoto:
        """Decode, detect and align one photo; failures become a record, never an exception."""
        return ScoredPhoto(self.preparer(largest_face_only, min_face_size)(item))

    def score_prepared(self, photos: Sequence[ScoredPhoto], batch_size: int | None = None) -> None:
        """Score the faces of several photos in one go (the scorer batches them)."""
        spec = crop_spec(self.scorer)
        crops = [crop for p in photos for crop in p.photo.crops.get(spec, [])]
        if not crops:
            return
        scores = np.asarray(self.scorer.score(crops, batch_size=batch_size), dtype=np.float64)
        start = 0
        for p in photos:
            n = len(p.photo.faces)
            p.scores = scores[start:start + n]
            start += n

    def to_record(self, scored: ScoredPhoto) -> dict[str, Any]:
        """The result record of one photo. A non-finite quality (a broken model: NaN weights) is never a
        success: that face is left out and the record gets an ``error`` naming the input and the model."""
        photo, faces, broken = scored.photo, [], []
        if scored.scores is not None:
            for index, (face, quality) in enumerate(zip(photo.faces, scored.scores)):
                if not np.isfinite(quality):
                    broken.append(f"face {index}: {float(quality)}")
                    continue
                faces.append({
                    "face_index": index,
                    "box": [round(float(v), 2) for v in face.box],
                    "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in face.landmarks],
                    "detection_score": round(float(face.score), 4),
                    "quality": float(quality),
                })
                if photo.annotations is not None:
                    faces[-1].update(self.explain(float(quality), photo.annotations[index]))
            faces.sort(key=lambda f: -f["quality"])
        error = photo.error
        if broken:
            error = (f"non-finite quality from model {scorer_name(self.scorer)} for {photo.source} "
                     f"({', '.join(broken)})")
        return {"input": photo.source, "faces": faces, "reason": photo.reason, "error": error}

    def explain(self, quality: float | None, results: dict) -> dict[str, Any]:
        """The component fields of one face record: ``components``, ``concerns`` and, with a rule,
        ``acceptable``/``failed``/``unchecked``."""
        fields: dict[str, Any] = {"components": as_records(results), "concerns": concerns(results)}
        if self.acceptance is not None:
            fields.update(self.acceptance.check(quality, results))
        return fields

    def preparer(self, largest_face_only: bool | None = None, min_face_size: float | None = None) -> CropTask:
        """Decoding, detection, alignment (and the components, when on) with these options, as an object
        DataLoader workers run (see :mod:`hf_fiqa.sharding`); :meth:`score_chunk` takes what it returns."""
        largest = self.largest_face_only if largest_face_only is None else bool(largest_face_only)
        smallest = self.min_face_size if min_face_size is None else float(min_face_size)
        return CropTask(self.cropper, (crop_spec(self.scorer),), "largest" if largest else "all", smallest,
                        annotate=self.components)

    # -- entry points -------------------------------------------------------------------------------------------
    def iter_records(self, items: Iterable[Any], progress: bool = False, total: int | None = None,
                     largest_face_only: bool | None = None, min_face_size: float | None = None,
                     batch_size: int | None = None, workers: int = 0) -> Iterator[dict]:
        """Yield one record per input, in input order.

        Photos are decoded and aligned ``chunk_size`` at a time (in ``workers`` DataLoader processes while the
        model scores the previous chunk; 0: in this process); their faces are scored ``batch_size`` at a time and
        each photo's record is yielded as soon as its last face is scored, so progress moves per batch of faces.
        """
        items = items if isinstance(items, Sequence) else list(items)
        chunks = [(None, list(range(start, min(start + self.chunk_size, len(items)))))
                  for start in range(0, len(items), self.chunk_size)]
        bar = tqdm(total=total, unit="photo", disable=not progress, desc="scoring faces")
        try:
            for batch in prepared_batches(items, self.preparer(largest_face_only, min_face_size), chunks, workers):
                yield from self.score_chunk(batch.prepared, bar, batch_size)
        finally:
            bar.close()

    def score_chunk(self, photos: Sequence[CroppedPhoto], bar: Any = None, batch_size: int | None = None) -> Iterator[dict]:
        """The records of cropped photos (from :meth:`preparer`), in order, each yielded once its faces are scored
        (``batch_size`` faces per forward pass); ``bar`` (tqdm) moves one step per photo."""
        chunk = [ScoredPhoto(photo) for photo in photos]
        spec = crop_spec(self.scorer)
        crops, ends = [], []
        for p in chunk:
            crops.extend(p.photo.crops.get(spec, []))
            ends.append(len(crops))
        step = int(batch_size or getattr(self.scorer, "batch_size", 0) or 16)
        scores = np.empty(len(crops), dtype=np.float64)
        ready, start = 0, 0
        while True:
            # every photo whose faces are all scored goes out now
            while ready < len(chunk) and ends[ready] <= start:
                photo = chunk[ready]
                first = ends[ready - 1] if ready else 0
                if photo.photo.crops.get(spec):
                    photo.scores = scores[first:ends[ready]].copy()
                if bar is not None:
                    bar.update(1)
                yield self.to_record(photo)
                ready += 1
            if start >= len(crops):
                break
            batch = crops[start:start + step]
            scores[start:start + len(batch)] = np.asarray(self.scorer.score(batch, batch_size=step), dtype=np.float64)
            if bar is not None:
                bar.set_postfix_str(f"{start + len(batch)} faces", refresh=False)
            start += len(batch)

    def score_aligned(self, items: Sequence[Any], batch_size: int | None = None) -> list[dict[str, Any]]:
        """Score inputs that already are aligned face crops (any size): one quality per input, no detection."""
        records: list[dict[str, Any]] = [{"input": describe(item), "quality": None, "error": None} for item in items]
        crops, owners = [], []
        for index, item in enumerate(items):
            try:
                crops.append(AlignedFace(crop=np.asarray(load_image(item))))
                owners.append(index)
            except ImageReadError as exc:
                records[index]["error"] = str(exc)
        if crops:
            for index, quality in zip(owners, self.scorer.score(crops, batch_size=batch_size)):
                if np.isfinite(quality):
                    records[index]["quality"] = float(quality)
                else:
                    records[index]["error"] = (f"non-finite quality ({float(quality)}) from model "
                                               f"{scorer_name(self.scorer)} for {records[index]['input']}")
        return records


class FaceQualityPipeline(Pipeline):
    """transformers pipeline for face image quality; see the module docstring for inputs and outputs.

    Call options: ``aligned`` (inputs are aligned crops: one score each, no detection), ``largest_face_only``,
    ``min_face_size``, ``batch_size`` (faces per forward pass), ``progress``. Constructor-only options:
    ``detector`` (an object with ``detect``), ``detector_weights`` (YuNet ONNX path), ``scorer`` (override the
    model's default scorer), ``components``, ``face_mesh`` and ``acceptance`` (see :class:`FaceQualityAnalyzer`).
    """

    def __init__(self, model, image_processor=None, *, detector=None, detector_weights: str | None = None,
                 scorer: QualityScorer | None = None, components: bool = False, face_mesh: Any = None,
                 acceptance: Any = None, **kwargs: Any):
        super().__init__(model=model, image_processor=image_processor, **kwargs)
        scorer = scorer or scorer_for_model(self.model, self.image_processor, device=self.device)
        self.analyzer = FaceQualityAnalyzer(scorer, detector=detector, detector_weights=detector_weights,
                                            components=components, face_mesh=face_mesh, acceptance=acceptance)

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
        batch_size = options.get("batch_size")
        if options.get("aligned", False):
            records = self.analyzer.score_aligned(items, batch_size=batch_size)
        else:
            records = list(self.analyzer.iter_records(
                items, progress=bool(options.get("progress", False)), total=len(items),
                largest_face_only=bool(options.get("largest_face_only", False)),
                min_face_size=float(options.get("min_face_size", 0.0)), batch_size=batch_size))
        return records[0] if single else records

    # The transformers Pipeline contract, one photo at a time (``__call__`` batches faces across photos instead).
    def preprocess(self, item: Any, **kwargs: Any) -> ScoredPhoto:
        return self.analyzer.prepare(item, kwargs.get("largest_face_only"), kwargs.get("min_face_size"))

    def _forward(self, photo: ScoredPhoto, **kwargs: Any) -> ScoredPhoto:
        self.analyzer.score_prepared([photo])
        return photo

    def postprocess(self, photo: ScoredPhoto, **kwargs: Any) -> dict[str, Any]:
        return self.analyzer.to_record(photo)
