"""Examples for each training task, as torch datasets over Hugging Face ``datasets``.

Sources are the loaders of :mod:`hf_fiqa.data`; faces are detected and aligned once through
:func:`hf_fiqa.data.align_dataset` (cached by ``datasets``). Splits never share content: photos of one
source image (degradations), one reference (TID2013) or one identity (faces) stay on one side.
"""

from __future__ import annotations

import csv
import logging
import math
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
    """(pixel tensor, target) pairs from an HF dataset with ``image`` and ``label`` columns.

    With a ``seed`` (training), the random augmentation of an example is a pure function of (seed, epoch, index):
    it draws from a torch RNG seeded for that example alone and leaves the global RNG untouched. So augmentations
    do not depend on when the loader fetches a batch (accelerate reads one batch ahead), on worker processes, or
    on how many batches were skipped after ``--resume``; and the global RNG (dropout) only moves with the model.
    Call :meth:`set_epoch` before each epoch's loader is built.
    """

    def __init__(self, ds: Any, transform: Callable[[Image.Image], torch.Tensor], target: Callable[[Any], Any],
                 seed: int | None = None):
        self.ds, self.transform, self.target = ds, transform, target
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Any]:
        row = self.ds[int(index)]
        image = row["image"]
        if not isinstance(image, Image.Image):
            image = Image.open(image["path"]) if isinstance(image, dict) else image
        image = image.convert("RGB")
        if self.seed is None:
            pixels = self.transform(image)
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(example_seed(self.seed, self.epoch, int(index)))
                pixels = self.transform(image)
        return pixels, self.target(row["label"])


def example_seed(seed: int, epoch: int, index: int) -> int:
    """A well-mixed 63-bit seed for one example's augmentation in one epoch."""
    return int(np.random.SeedSequence([int(seed), int(epoch), int(index)]).generate_state(1, np.uint64)[0] >> 1)


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


def _first(items: list[str], n: int = 10) -> str:
    """The first ``n`` items, and how many more."""
    shown = ", ".join(items[:n])
    return shown + (f" and {len(items) - n} more" if len(items) > n else "")


def check_identities(identities: list[Any], source: str, task: str, minimum: int = 2) -> None:
    """Face tasks split by identity and verify with mated pairs: at least ``minimum`` identities must have two or
    more photos (after faces were detected)."""
    counts: dict[str, int] = {}
    for identity in identities:
        counts[str(identity)] = counts.get(str(identity), 0) + 1
    multi = sorted(k for k, n in counts.items() if n >= 2)
    if len(multi) < minimum:
        singles = sorted(k for k, n in counts.items() if n < 2)
        raise ConfigError(
            f"{source}: {task} needs at least {minimum} identities with two or more photos, found {len(multi)} "
            f"({_first(multi) or 'none'}) among {len(counts)} identities and {len(identities)} photos"
            + (f"; identities with a single photo: {_first(singles)}" if singles else "")
            + "; use more data (data.limit) or a dataset with several photos per identity")


def check_validation_pairs(identities: list[Any], source: str, task: str) -> None:
    """Validation needs a genuine pair (an identity with two photos) and an impostor pair (two identities)."""
    counts: dict[str, int] = {}
    for identity in identities:
        counts[str(identity)] = counts.get(str(identity), 0) + 1
    if len(counts) < 2 or max(counts.values(), default=0) < 2:
        raise ConfigError(
            f"{source}: the validation split of {task} holds {len(identities)} photos of {len(counts)} identities "
            f"and {sum(n >= 2 for n in counts.values())} with two or more photos; verification needs at least two "
            "identities, one with two or more photos. Raise data.val_fraction or data.limit")


def _check_nonempty(train: Any, val: Any, source: str) -> None:
    if len(train) == 0 or len(val) == 0:
        raise ConfigError(f"{source} gives {len(train)} training and {len(val)} validation examples after "
                          "filtering and splitting; both must be non-empty")


def _limit(ds: Any, limit: int | None) -> Any:
    return ds.select(range(min(limit, len(ds)))) if limit else ds


def _photos(root: str, limit: int | None) -> Any:
    """An identity folder / labels.csv folder, or any folder of images (each photo its own group)."""
    from datasets import Dataset, Features, Image as ImageFeature, Value

    from ..data import load_identity_folder
    from ..io import IMAGE_SUFFIXES

    path = Path(root)
    if path.is_file() or (path / "labels.csv").is_file():
        ds = _limit(load_identity_folder(path), limit)
        if len(ds) == 0:
            raise ConfigError(f"data.root {root} lists no photos")
        return ds
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
        for split, part in (("train", train), ("validation", val)):
            mos = np.asarray(part["label"], dtype=np.float64)
            bad = np.flatnonzero(~np.isfinite(mos))
            if len(bad):
                names = part["path"] if "path" in part.column_names else None
                rows = [f"row {i}" + (f" ({names[i]})" if names is not None else "") + f": {mos[i]}" for i in bad]
                raise ConfigError(f"data.root {data.root} ({data.source}, {split} split): {len(bad)} MOS value(s) "
                                  f"are not finite: {_first(rows)}")
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
    _check_nonempty(train, val, f"data.root {data.root} ({data.source})")
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
    if not rows:
        raise ConfigError(f"data.root {path}: the CSV has a header but no rows")
    images, labels, groups, non_finite = [], [], [], []
    for line, row in enumerate(rows, start=2):
        if not row.get("image"):
            raise ConfigError(f"{path}:{line}: the image column is empty")
        file = Path(row["image"]) if Path(row["image"]).is_absolute() else base / row["image"]
        if not file.is_file():
            raise ConfigError(f"{path}:{line}: image {file} does not exist")
        try:
            label = float(row["label"])
        except (TypeError, ValueError):
            raise ConfigError(f"{path}:{line}: label {row['label']!r} is not a number") from None
        if not math.isfinite(label):
            non_finite.append(f"line {line} ({row['label'].strip()})")
        labels.append(label)
        images.append(str(file))
        groups.append(row.get("group") or row["image"])
    if non_finite:
        raise ConfigError(f"{path}: {len(non_finite)} label(s) are not finite numbers: {_first(non_finite)}; "
                          "fix or drop those rows")
    ds = Dataset.from_dict({"image": images, "label": labels},
                           features=Features({"image": ImageFeature(), "label": Value("float32")}))
    ds = _limit(ds, config.data.limit)
    return _split_by_group(ds, groups[: len(ds)], config.data.val_fraction, config.seed)


def _aligned_faces(photos: Any, size: int, config: TrainConfig, source: str = "the data") -> Any:
    """Replace ``image`` by the aligned face crop at ``size``; rows with no face are dropped (and counted)."""
    if len(photos) == 0:
        raise ConfigError(f"{source} gives no photos")
    if config.data.aligned:
        return photos
    from ..data import align_dataset

    aligned = align_dataset(photos, sizes=(size,), detector_weights=config.data.detector_weights,
                            num_proc=None)
    kept = aligned.filter(lambda found: found, input_columns="face_found")
    dropped = len(aligned) - len(kept)
    if len(kept) == 0:
        raise ConfigError(f"{source}: none of the {len(aligned)} photos has a detectable face, so nothing is left to "
                          "train on (are they faces? data.aligned=true if they already are aligned crops; "
                          "data.detector_weights)")
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
    quality = pd.to_numeric(labels["quality"], errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(quality))
    if len(bad):
        where = [f"parquet row {i} (row id {labels['row'].iloc[i]}): {labels['quality'].iloc[i]!r}" for i in bad]
        raise ConfigError(f"{data.labels}: {len(bad)} quality label(s) are not finite numbers: {_first(where)}")
    if labels["row"].duplicated().any():
        dup = labels["row"][labels["row"].duplicated()].unique().tolist()
        raise ConfigError(f"{data.labels}: row id(s) labelled more than once: {_first([str(r) for r in dup])}")
    table = rows.merge(labels[["row", "quality"]], on="row", how="inner")
    if table.empty:
        raise ConfigError(f"no row of {data.labels} matches a row of {data.rows}")
    if len(table) < len(rows):
        logger.warning("%d of %d rows of %s have no label in %s and are left out", len(rows) - len(table), len(rows),
                       data.rows, data.labels)
    base = Path(data.root) if data.root else Path(data.rows).parent
    paths = [p if Path(p).is_absolute() else str(base / p) for p in table["path"]]
    ds = Dataset.from_dict(
        {"image": paths, "label": table["quality"].astype("float32").tolist(), "row": table["row"].tolist(),
         "identity": table["identity"].astype(str).tolist()},
        features=Features({"image": ImageFeature(), "label": Value("float32"), "row": Value("int64"),
                           "identity": Value("string")}))
    ds = _limit(ds, data.limit)
    ds = _aligned_faces(ds, size, config, source=f"data.rows {data.rows}")
    check_identities(list(ds["identity"]), f"data.rows {data.rows}", "fiqa")
    train, val = _split_by_group(ds, list(ds["identity"]), data.val_fraction, config.seed)
    if data.embeddings:  # EDC needs mated pairs among validation faces
        check_validation_pairs(list(val["identity"]), f"data.rows {data.rows}", "fiqa (EDC with data.embeddings)")
    embeddings = None
    if data.embeddings:
        embeddings = read_embeddings(data.embeddings, mmap=True)[np.asarray(val["row"])].astype(np.float32)
    _check_nonempty(train, val, f"data.rows {data.rows}")
    labels_arr = np.asarray(train["label"], dtype=np.float64)
    return TaskData(train=train, validation=val, label_range=(float(labels_arr.min()), float(labels_arr.max())),
                    val_embeddings=embeddings)


def load_recognition(config: TrainConfig, size: int) -> TaskData:
    """Aligned faces of an identity folder: train identities get class ids, held-out identities verify."""
    photos = _photos(config.data.root, config.data.limit)
    faces = _aligned_faces(photos, size, config, source=f"data.root {config.data.root}")
    identities = [str(i) for i in faces["identity"]]
    feature = faces.features.get("identity")
    names = feature.int2str if hasattr(feature, "int2str") else str  # ClassLabel ids -> the dataset's names
    check_identities([names(i) for i in faces["identity"]], f"data.root {config.data.root}", "recognition")
    train, val = _split_by_group(faces, identities, config.data.val_fraction, config.seed)
    check_validation_pairs([names(i) for i in val["identity"]], f"data.root {config.data.root}", "recognition")
    names = sorted({str(i) for i in train["identity"]})
    index = {name: k for k, name in enumerate(names)}
    train = train.add_column("label", [index[str(i)] for i in train["identity"]])
    val = val.add_column("label", [-1] * len(val))
    return TaskData(train=train, validation=val, num_classes=len(names))
