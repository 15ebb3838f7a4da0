"""Photos -> detected, aligned, embedded faces, kept in memory-friendly arrays for a recipe.

One pass over a labelled photo list does everything later stages need: the largest face of each
photo is detected once and warped onto every crop spec asked for (the recognizer's chip, the
quality network's input, ArcFace's template for other recognizers), the recognizer's embeddings
are written in the ``hf-fiqa embed`` format (so ``pseudo-label`` and ``evaluate-fiqa`` read them
unchanged), and crops and detections are saved beside them as ``.npy`` arrays.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from ..embedding.embedder import RecognitionEmbedder
from ..embedding.inputs import list_inputs
from ..embedding.store import (format_float, read_embeddings, read_rows, write_embeddings, write_json, write_npy,
                               write_npz)
from ..faces.cropper import FaceCropper
from ..faces.types import CropSpec, DetectedFace


@dataclass
class FaceSet:
    """A saved face pass: row ``i`` of every array is photo ``i`` of the list; ``ok`` marks found faces."""

    folder: Path
    paths: np.ndarray
    identities: np.ndarray
    ok: np.ndarray
    embeddings: np.ndarray
    boxes: np.ndarray
    landmarks: np.ndarray
    det_scores: np.ndarray

    def crops(self, name: str) -> np.ndarray:
        """The ``(N, S, S, 3)`` uint8 crops saved under ``name`` (zeros where no face), memory-mapped."""
        return np.load(self.folder / f"crops_{name}.npy", mmap_mode="r")

    def photo_paths(self, rows: np.ndarray | None = None) -> list[str]:
        """The photos of ``rows`` as paths that open from anywhere: ``paths`` are as the list wrote them, relative
        to the list's folder (``done.json`` names the list)."""
        base = Path(json.loads((self.folder / "done.json").read_text())["labels"]).parent
        paths = self.paths if rows is None else self.paths[rows]
        return [str(p if Path(p).is_absolute() else base / p) for p in paths]

    def detected(self, index: int) -> DetectedFace:
        return DetectedFace(box=self.boxes[index], landmarks=self.landmarks[index], score=float(self.det_scores[index]))

    @classmethod
    def load(cls, folder: str | Path) -> "FaceSet":
        folder = Path(folder)
        rows = read_rows(folder / "rows.csv", required=("row", "path", "identity"))
        det = np.load(folder / "detections.npz")
        return cls(folder, rows["path"].to_numpy().astype(str), rows["identity"].to_numpy().astype(str),
                   rows["ok"].to_numpy(dtype=bool), read_embeddings(folder / "embeddings.npy"),
                   det["boxes"], det["landmarks"], det["scores"])


@dataclass
class FacePool:
    """The found faces of several passes (LFW, CFP) as one training set: row ``i`` of every array is face ``i``.

    ``person`` names people across the passes (a CFP identity that is also an LFW identity gets the LFW name),
    so labels compare a face with every other photo of its person and identity splits never cut a person in
    two. ``embeddings`` holds each recognizer's.
    """

    sets: dict[str, FaceSet]
    dataset: np.ndarray
    row: np.ndarray
    person: np.ndarray
    det_scores: np.ndarray
    embeddings: dict[str, np.ndarray]

    @classmethod
    def of(cls, sets: dict[str, FaceSet], persons: dict[str, np.ndarray],
           embeddings: dict[str, dict[str, np.ndarray]]) -> "FacePool":
        """``persons[name]`` and ``embeddings[recognizer][name]`` are per photo of pass ``name``."""
        found = {name: np.flatnonzero(faces.ok) for name, faces in sets.items()}
        return cls(sets, np.concatenate([np.full(len(rows), name) for name, rows in found.items()]),
                   np.concatenate(list(found.values())),
                   np.concatenate([np.asarray(persons[name])[rows] for name, rows in found.items()]).astype(str),
                   np.concatenate([sets[name].det_scores[rows] for name, rows in found.items()]),
                   {rec: np.concatenate([per[name][rows] for name, rows in found.items()])
                    for rec, per in embeddings.items()})

    def __len__(self) -> int:
        return len(self.row)

    def crops(self, name: str) -> np.ndarray:
        """The pooled ``(N, S, S, 3)`` crops saved under ``name`` (read into memory)."""
        return np.concatenate([np.asarray(faces.crops(name))[self.row[self.dataset == key]]
                               for key, faces in self.sets.items()])


def embed_faces(labels: str | Path, folder: str | Path, embedder: RecognitionEmbedder, cropper: FaceCropper,
                crop_specs: dict[str, CropSpec], workers: int = 2, progress: bool = True) -> FaceSet:
    """Detect, align, embed and save every photo of ``labels`` (CSV or folder) into ``folder``.

    ``crop_specs`` names the crops to keep besides the recognizer's own (saved as ``crops_<name>.npy``).
    Skipped when ``folder/done.json`` exists (a finished pass).
    """
    folder = Path(folder)
    if (folder / "done.json").is_file():
        return FaceSet.load(folder)
    folder.mkdir(parents=True, exist_ok=True)
    items, _ = list_inputs(labels)
    n = len(items)
    recognizer_spec = CropSpec(embedder.crop_size, embedder.crop_template)
    specs = {"recognizer": recognizer_spec, **crop_specs}
    crops = {name: np.zeros((n, spec.size, spec.size, 3), dtype=np.uint8) for name, spec in specs.items()}
    boxes = np.full((n, 4), np.nan, dtype=np.float32)
    landmarks = np.full((n, 5, 2), np.nan, dtype=np.float32)
    scores = np.full(n, np.nan, dtype=np.float32)
    errors, n_faces = [""] * n, [0] * n
    ok = np.zeros(n, dtype=bool)

    def crop(item):
        return cropper(item.file, specs=list(dict.fromkeys(specs.values())), select="largest")

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        bar = tqdm(pool.map(crop, items), total=n, unit="photo", desc=f"faces of {Path(labels).name}",
                   disable=not progress)
        for i, photo in enumerate(bar):
            n_faces[i] = photo.n_detected or 0
            if not photo.faces:
                errors[i] = photo.error or photo.reason or "no face detected"
                continue
            ok[i] = True
            face = photo.faces[0]
            boxes[i], landmarks[i], scores[i] = face.box, face.landmarks, face.score
            for name, spec in specs.items():
                crops[name][i] = photo.crops[spec][0].crop
    embeddings = np.full((n, embedder.embedding_size), np.nan, dtype=np.float32)
    good = np.flatnonzero(ok)
    for lo in tqdm(range(0, len(good), 256), desc="embedding", unit="batch", disable=not progress):
        index = good[lo:lo + 256]
        embeddings[index] = embedder.embed_crops(crops["recognizer"][index])
    norms = np.linalg.norm(embeddings, axis=1)
    rows = [{"row": i, "path": item.path, "identity": item.identity, "ok": bool(ok[i]), "error": errors[i],
             "n_faces": n_faces[i], "det_score": format_float(float(scores[i])) if ok[i] else "",
             "norm": format_float(float(norms[i])) if ok[i] else ""} for i, item in enumerate(items)]
    write_embeddings(folder, "npy", rows, embeddings)
    for name, array in crops.items():
        write_npy(folder / f"crops_{name}.npy", array)
    write_npz(folder / "detections.npz", boxes=boxes, landmarks=landmarks, scores=scores)
    write_json(folder / "done.json", {"photos": n, "faces": int(ok.sum()), "labels": str(labels),
                                      "crops": {k: [v.size, v.template] for k, v in specs.items()}})
    return FaceSet.load(folder)


def recognizer_embeddings(faces: FaceSet, crops: str, embedder: RecognitionEmbedder, name: str,
                          progress: bool = True) -> np.ndarray:
    """A second recognizer's embeddings of a saved face pass, from its saved ``crops`` (the recognizer's own
    template), cached as ``embeddings_<name>.npy`` beside the pass; NaN rows where no face was found."""
    path = faces.folder / f"embeddings_{name}.npy"
    if path.is_file():
        return np.load(path)
    rows = np.flatnonzero(faces.ok)
    out = np.full((len(faces.ok), embedder.embedding_size), np.nan, dtype=np.float32)
    out[rows] = embed_arrays(faces.crops(crops), embedder, progress=progress, desc=f"{name} embeddings",
                             rows=rows)
    write_npy(path, out)
    return out


def embed_arrays(crops: Sequence[np.ndarray] | np.ndarray, embedder: RecognitionEmbedder, batch: int = 256,
                 progress: bool = True, desc: str = "embedding", rows: np.ndarray | None = None) -> np.ndarray:
    """Embeddings of in-memory crops (already on the recognizer's template), in batches with progress; of
    ``crops[rows]`` only when ``rows`` is given (read a batch at a time, so memory-mapped crops stay on disk)."""
    rows = np.arange(len(crops)) if rows is None else np.asarray(rows)
    out = np.empty((len(rows), embedder.embedding_size), dtype=np.float32)
    for lo in tqdm(range(0, len(rows), batch), desc=desc, unit="batch", disable=not progress):
        out[lo:lo + batch] = embedder.embed_crops(np.asarray(crops[rows[lo:lo + batch]]))
    return out


def save_summary(path: Path, payload: dict) -> None:
    """A small JSON record of what a stage produced (read back to skip finished stages)."""
    write_json(path, json.loads(json.dumps(payload, default=float)))
