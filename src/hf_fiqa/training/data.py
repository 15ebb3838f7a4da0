"""Examples for each training task, as torch datasets over Hugging Face ``datasets``.

Sources are the loaders of :mod:`hf_fiqa.data`; faces are detected and aligned once through
:func:`hf_fiqa.data.align_dataset` (cached by ``datasets``). Splits never share content: photos of one
source image (degradations), one reference (TID2013) or one identity (faces) stay on one side.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image

from .config import ConfigError, TrainConfig

logger = logging.getLogger(__name__)


@dataclass
class TaskData:
    """What a task trains and evaluates on. ``labels`` are raw (unscaled) targets; ``identities`` label
    validation rows for face metrics; ``embeddings`` (optional) feed EDC during evaluation."""

    train: Any  # datasets.Dataset with columns image, label (and identity)
    validation: Any
    label_range: tuple[float, float] | None = None
    num_classes: int | None = None
    val_embeddings: np.ndarray | None = None


class ExampleDataset(torch.utils.data.Dataset):
    """(pixel tensor, target) pairs from an HF dataset with ``image`` and ``label`` columns."""

    def __init__(self, ds: Any, transform: Callable[[Image.Image], torch.Tensor], target: Callable[[Any], Any]):
        self.ds, self.transform, self.target = ds, transform, target

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Any]:
        row = self.ds[int(index)]
        image = row["image"]
        if not isinstance(image, Image.Image):
            image = Image.open(image["path"]) if isinstance(image, dict) else image
        return self.transform(image.convert("RGB")), self.target(row["label"])


# -- transforms -------------------------------------------------------------------------------------------------
def train_transform(size: int, mean: list[float], std: list[float], views: str, channel_order: str = "RGB") -> Callable:
    """MANIQA-style augmentation and a horizontal flip. ``views``: ``random_crop`` takes a ``size`` crop at the
    image's own resolution (what the paper does: distortions stay visible), ``resize`` squeezes the whole image
    (aligned faces, which already are the whole input). ``mean``/``std`` and ``channel_order`` are the image
    processor's, so training sees pixels normalised as inference does."""
    import torchvision.transforms.v2 as T

    first = T.Resize((size, size), antialias=True) if views == "resize" else T.RandomCrop(size, pad_if_needed=True)
    steps = [T.ToImage(), first, T.RandomHorizontalFlip(), T.ToDtype(torch.float32, scale=True)]
    if channel_order == "BGR":
        steps.append(_ToBGR())
    return T.Compose(steps + [T.Normalize(mean, std)])


class _ToBGR:
    """(3, H, W) RGB -> BGR, for checkpoints trained on OpenCV-ordered pixels (MagFace)."""

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        return pixels.flip(0)


class ProcessorTransform:
    """The exported image processor as a validation transform: validation scores exactly the view and the
    normalisation that inference (``hf-fiqa``'s scorers and pipeline) will use. One view per image."""

    def __init__(self, processor: Any):
        self.processor = processor

    def __call__(self, image: Image.Image) -> torch.Tensor:
        pixels = self.processor(image, return_tensors="pt")["pixel_values"]
        if len(pixels) != 1:
            raise ValueError(f"{type(self.processor).__name__} makes {len(pixels)} views per image; validation "
                             "needs a single-view policy (resize or center_crop)")
        return pixels[0]


# -- sources ----------------------------------------------------------------------------------------------------
def _split_by_group(ds: Any, groups: list[Any], val_fraction: float, seed: int) -> tuple[Any, Any]:
    unique = sorted(set(groups), key=str)
    rng = np.random.default_rng(seed)
    rng.shuffle(unique)
    n_val = max(1, int(round(len(unique) * val_fraction)))
    if n_val >= len(unique):
        raise ConfigError(f"data.val_fraction={val_fraction} leaves no training group out of {len(unique)}")
    val_groups = set(unique[:n_val])
    val = [i for i, g in enumerate(groups) if g in val_groups]
    train = [i for i, g in enumerate(groups) if g not in val_groups]
    return ds.select(train), ds.select(val)


def _limit(ds: Any, limit: int | None) -> Any:
    return ds.select(range(min(limit, len(ds)))) if limit else ds


def _photos(root: str, limit: int | None) -> Any:
    """An identity folder / labels.csv folder, or any folder of images (each photo its own group)."""
    from datasets import Dataset, Features, Image as ImageFeature, Value

    from ..data import load_identity_folder
    from ..io import IMAGE_SUFFIXES

    path = Path(root)
    if path.is_file() or (path / "labels.csv").is_file():
        ds = load_identity_folder(path)
        return _limit(ds, limit)
    files = sorted(str(p) for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)[: limit or None]
    if not files:
        raise ConfigError(f"data.root {root} holds no images")
    return Dataset.from_dict({"image": files, "path": files, "identity": files},
                             features=Features({"image": ImageFeature(), "path": Value("string"),
                                                "identity": Value("string")}))


def load_iqa(config: TrainConfig) -> TaskData:
    data = config.data
    if data.source in ("koniq10k", "tid2013"):
        from ..data import load_koniq10k, load_tid2013

        splits = load_koniq10k(data.root) if data.source == "koniq10k" else load_tid2013(data.root, seed=config.seed)
        train, val = splits["train"], splits["validation"]
        train = _limit(train.rename_column("mos", "label"), data.limit)
        val = _limit(val.rename_column("mos", "label"), data.limit)
    elif data.source == "csv":
        train, val = _csv_source(data.root, config)
    else:  # degradations of real photos: label = quality level, 5 (pristine) down to 0 (severity 5)
        from ..data import degrade_dataset

        photos = _photos(data.root, data.limit)
        train_photos, val_photos = _split_by_group(photos, list(photos["identity"]), data.val_fraction, config.seed)
        out = []
        for part, seed in ((train_photos, config.seed), (val_photos, config.seed + 1)):
            degraded = degrade_dataset(part.select_columns(["image"]), types=data.degradations,
                                       severities=data.severities, seed=seed, keep_original=True)
            labels = [5.0 - float(s) for s in degraded["severity"]]
            out.append(degraded.add_column("label", labels))
        train, val = out
    labels = np.asarray(train["label"], dtype=np.float64)
    return TaskData(train=train, validation=val, label_range=(float(labels.min()), float(labels.max())))


def _csv_source(path: str, config: TrainConfig) -> tuple[Any, Any]:
    from datasets import Dataset, Features, Image as ImageFeature, Value

    base = Path(path).parent
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or not {"image", "label"} <= set(reader.fieldnames):
            raise ConfigError(f"data.root {path}: the CSV needs 'image' and 'label' columns, has {reader.fieldnames}")
        rows = list(reader)
    images, labels, groups = [], [], []
    for line, row in enumerate(rows, start=2):
        file = Path(row["image"]) if Path(row["image"]).is_absolute() else base / row["image"]
        if not file.is_file():
            raise ConfigError(f"{path}:{line}: image {file} does not exist")
        try:
            labels.append(float(row["label"]))
        except ValueError:
            raise ConfigError(f"{path}:{line}: label {row['label']!r} is not a number") from None
        images.append(str(file))
        groups.append(row.get("group") or row["image"])
    ds = Dataset.from_dict({"image": images, "label": labels},
                           features=Features({"image": ImageFeature(), "label": Value("float32")}))
    ds = _limit(ds, config.data.limit)
    return _split_by_group(ds, groups[: len(ds)], config.data.val_fraction, config.seed)


def _aligned_faces(photos: Any, size: int, config: TrainConfig) -> Any:
    """Replace ``image`` by the aligned face crop at ``size``; rows with no face are dropped (and counted)."""
    if config.data.aligned:
        return photos
    from ..data import align_dataset

    aligned = align_dataset(photos, sizes=(size,), detector_weights=config.data.detector_weights,
                            num_proc=None)
    kept = aligned.filter(lambda found: found, input_columns="face_found")
    dropped = len(aligned) - len(kept)
    if dropped:
        logger.warning("%d of %d photos had no detectable face and are left out", dropped, len(aligned))
    return kept.remove_columns("image").rename_column(f"aligned_{size}", "image")


def load_fiqa(config: TrainConfig, size: int) -> TaskData:
    """Aligned faces with SDD-FIQA pseudo-labels, split by identity."""
    import pandas as pd
    from datasets import Dataset, Features, Image as ImageFeature, Value

    from ..embedding.store import EmbeddingFormatError, read_embeddings, read_rows

    data = config.data
    try:
        rows = read_rows(data.rows, required=("row", "path", "identity"))
    except EmbeddingFormatError as exc:
        raise ConfigError(f"data.rows: {exc}") from None
    labels = pd.read_parquet(data.labels)
    missing = {"row", "quality"} - set(labels.columns)
    if missing:
        raise ConfigError(f"{data.labels} lacks column(s) {sorted(missing)}")
    table = rows.merge(labels[["row", "quality"]], on="row", how="inner")
    if table.empty:
        raise ConfigError(f"no row of {data.labels} matches a row of {data.rows}")
    if not np.isfinite(table["quality"]).all():
        raise ConfigError(f"{data.labels}: labels hold NaN or inf")
    base = Path(data.root) if data.root else Path(data.rows).parent
    paths = [p if Path(p).is_absolute() else str(base / p) for p in table["path"]]
    ds = Dataset.from_dict(
        {"image": paths, "label": table["quality"].astype("float32").tolist(), "row": table["row"].tolist(),
         "identity": table["identity"].astype(str).tolist()},
        features=Features({"image": ImageFeature(), "label": Value("float32"), "row": Value("int64"),
                           "identity": Value("string")}))
    ds = _limit(ds, data.limit)
    ds = _aligned_faces(ds, size, config)
    train, val = _split_by_group(ds, list(ds["identity"]), data.val_fraction, config.seed)
    embeddings = None
    if data.embeddings:
        embeddings = read_embeddings(data.embeddings, mmap=True)[np.asarray(val["row"])].astype(np.float32)
    labels_arr = np.asarray(train["label"], dtype=np.float64)
    return TaskData(train=train, validation=val, label_range=(float(labels_arr.min()), float(labels_arr.max())),
                    val_embeddings=embeddings)


def load_recognition(config: TrainConfig, size: int) -> TaskData:
    """Aligned faces of an identity folder: train identities get class ids, held-out identities verify."""
    photos = _photos(config.data.root, config.data.limit)
    faces = _aligned_faces(photos, size, config)
    identities = [str(i) for i in faces["identity"]]
    train, val = _split_by_group(faces, identities, config.data.val_fraction, config.seed)
    names = sorted({str(i) for i in train["identity"]})
    index = {name: k for k, name in enumerate(names)}
    train = train.add_column("label", [index[str(i)] for i in train["identity"]])
    val = val.add_column("label", [-1] * len(val))
    return TaskData(train=train, validation=val, num_classes=len(names))
