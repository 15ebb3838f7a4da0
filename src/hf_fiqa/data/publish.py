"""Writing a ``DatasetDict`` as a Hub dataset repository (Parquet shards + card) and pushing it.

Repository layout, the one ``push_to_hub`` produces and ``load_dataset`` reads::

    README.md                                  card: YAML metadata + description
    data/<split>-00000-of-0000N.parquet        image bytes embedded, features in the schema

The YAML carries ``license`` (+ ``license_name``/``license_link`` for ``other``),
``task_categories``, ``configs`` -> ``data_files`` per split, and ``dataset_info`` (features,
split sizes), so the Hub viewer and ``load_dataset`` agree on types (``ClassLabel`` names,
``Image`` columns). The folder is written locally first; pushing is one ``upload_folder``
call, so what is uploaded is exactly what was checked locally.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

from .cards import CardInfo
from .rec2parquet import DEFAULT_MAX_SHARD_SIZE, parse_size, shard_file_name

IMAGE_ROW_GROUP = 100  # rows per Parquet row group when a split holds images: cheap random reads


def _as_dict(dataset_dict):
    import datasets

    if isinstance(dataset_dict, datasets.Dataset):
        return datasets.DatasetDict({str(dataset_dict.split or "train"): dataset_dict})
    if not isinstance(dataset_dict, datasets.DatasetDict):
        raise TypeError(f"expected a datasets.Dataset or DatasetDict, got {type(dataset_dict).__name__}")
    if not dataset_dict:
        raise ValueError("the DatasetDict has no splits")
    return dataset_dict


def _has_images(features) -> bool:
    from datasets.features.features import require_decoding

    return any(require_decoding(f, ignore_decode_attribute=True) for f in features.values())


def write_parquet_shards(ds, data_dir: Path, split: str, *, max_shard_size: int | str = DEFAULT_MAX_SHARD_SIZE,
                         embed_external_files: bool = True) -> list[Path]:
    """Write one split as ``data_dir/<split>-XXXXX-of-YYYYY.parquet``; return the files.

    Images referenced by path are read and embedded (``embed_table_storage``, as
    ``push_to_hub`` does), so the shards are self-contained.
    """
    from datasets.table import embed_table_storage

    data_dir.mkdir(parents=True, exist_ok=True)
    for old in data_dir.glob(f"{split}-*-of-*.parquet"):
        old.unlink()  # stale shards of an earlier write would be picked up by the data_files glob
    nbytes = ds._estimate_nbytes() if hasattr(ds, "_estimate_nbytes") else ds.data.nbytes
    num_shards = max(1, min(len(ds), math.ceil(nbytes / parse_size(max_shard_size)))) if len(ds) else 1
    row_group = IMAGE_ROW_GROUP if _has_images(ds.features) else None
    files = []
    for index in range(num_shards):
        shard = ds.shard(num_shards=num_shards, index=index, contiguous=True)
        if embed_external_files and _has_images(ds.features):
            fmt = shard.format
            shard = shard.with_format("arrow").map(embed_table_storage, batched=True, batch_size=row_group or 1000,
                                                   keep_in_memory=True, desc=f"embedding {split} images")
            shard = shard.with_format(**fmt)
        path = data_dir / shard_file_name(split, index, num_shards)
        shard.to_parquet(str(path), batch_size=row_group)
        files.append(path)
    return files


def build_card(dataset_dict, info: CardInfo | None = None, *, repo_id: str | None = None,
               license: str | None = None, citation: str | None = None, description: str | None = None,
               data_dir: str = "data", parquet_sizes: dict[str, int] | None = None):
    """A ``huggingface_hub.DatasetCard`` for ``dataset_dict`` (YAML metadata + markdown body)."""
    dataset_dict = _as_dict(dataset_dict)
    splits = list(dataset_dict)
    features = dataset_dict[splits[0]].features
    for name in splits[1:]:
        if dataset_dict[name].features != features:
            raise ValueError(f"split {name!r} has other features than {splits[0]!r}; one config needs one schema")
    return card_from_schema(
        features, {s: len(dataset_dict[s]) for s in splits}, info, repo_id=repo_id, license=license,
        citation=citation, description=description, data_dir=data_dir,
        split_bytes=parquet_sizes or {s: dataset_dict[s].data.nbytes for s in splits},
    )


def card_from_schema(features, num_rows: dict[str, int], info: CardInfo | None = None, *,
                     repo_id: str | None = None, license: str | None = None, citation: str | None = None,
                     description: str | None = None, data_dir: str = "data",
                     split_bytes: dict[str, int] | None = None):
    """The card for a repo whose splits have ``features`` and ``num_rows`` rows - no data needed
    (used after streaming conversions such as :func:`hf_fiqa.data.rec2parquet.rec_to_parquet`)."""
    from datasets.info import DatasetInfo, DatasetInfosDict
    from datasets.splits import SplitDict, SplitInfo
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCard, DatasetCardData

    info = info or CardInfo(pretty_name=repo_id or "dataset", description="", license="other", citation="")
    license = license or info.license
    citation = info.citation if citation is None else citation
    description = description or info.description
    splits = list(num_rows)
    sizes = split_bytes or {}

    meta: dict = {"license": license, "pretty_name": info.pretty_name}
    if license == "other":
        meta["license_name"] = info.license_name or "other"
        if info.license_link:
            meta["license_link"] = info.license_link
    if info.task_categories:
        meta["task_categories"] = list(info.task_categories)
    meta["tags"] = list(info.tags) + ["hf-fiqa"]
    meta["size_categories"] = [size_category(sum(int(n) for n in num_rows.values()))]
    meta.update(info.extra_metadata)
    card_data = DatasetCardData(**meta)

    split_dict = SplitDict()
    for name in splits:
        split_dict.add(SplitInfo(name=name, num_bytes=int(sizes.get(name, 0)), num_examples=int(num_rows[name])))
    ds_info = DatasetInfo(features=features, splits=split_dict, download_size=int(sum(sizes.values())),
                          dataset_size=int(sum(sizes.values())))
    DatasetInfosDict({"default": ds_info}).to_dataset_card_data(card_data)
    MetadataConfigs(
        {"default": {"data_files": [{"split": s, "path": f"{data_dir}/{s}-*"} for s in splits]}}
    ).to_dataset_card_data(card_data)

    counts = ", ".join(f"{s}: {int(num_rows[s]):,}" for s in splits)
    columns = "\n".join(f"- `{name}`: {_describe_feature(feat)}" for name, feat in features.items())
    licence_line = f"Licence: `{license}`"
    if license == "other" and info.license_link:
        licence_line += f" ({info.license_name}, {info.license_link})"
    body = [
        f"# {info.pretty_name}", "", description.strip(), "", f"Rows per split: {counts}.", "",
        "## Columns", "", columns, "",
        "## Usage", "", "```python", "from datasets import load_dataset",
        f'ds = load_dataset("{repo_id or "<repo_id>"}")', "```", "",
        "## Licence and terms", "", licence_line + ".",
    ]
    if info.terms:
        body += ["", info.terms]
    if info.homepage:
        body += ["", f"Source: {info.homepage}"]
    if citation:
        body += ["", "## Citation", "", "```bibtex", citation.strip(), "```"]
    body += ["", "Converted with hf-fiqa (`hf_fiqa.data`).", ""]
    return DatasetCard(f"---\n{card_data.to_yaml()}\n---\n\n" + "\n".join(body))


def size_category(num_rows: int) -> str:
    """The Hub's ``size_categories`` bucket for ``num_rows`` rows."""
    if num_rows < 1000:
        return "n<1K"
    bounds = [(10**4, "1K<n<10K"), (10**5, "10K<n<100K"), (10**6, "100K<n<1M"), (10**7, "1M<n<10M"),
              (10**8, "10M<n<100M"), (10**9, "100M<n<1B"), (10**10, "1B<n<10B"), (10**11, "10B<n<100B"),
              (10**12, "100B<n<1T")]
    for upper, label in bounds:
        if num_rows < upper:
            return label
    return "n>1T"


def _describe_feature(feature) -> str:
    from datasets import ClassLabel, Image, Value

    if isinstance(feature, Image):
        return "image"
    if isinstance(feature, ClassLabel):
        names = feature.names
        shown = ", ".join(names[:8]) + (f", ... ({len(names)} classes)" if len(names) > 8 else "")
        return f"class label ({shown})"
    if isinstance(feature, Value):
        return feature.dtype
    return type(feature).__name__


def write_dataset_repo(dataset_dict, local_dir: str | Path, info: CardInfo | None = None, *,
                       repo_id: str | None = None, license: str | None = None, citation: str | None = None,
                       description: str | None = None, max_shard_size: int | str = DEFAULT_MAX_SHARD_SIZE) -> Path:
    """Write Parquet shards and ``README.md`` into ``local_dir``; return it.

    Splits of ``local_dir/data`` that are not in ``dataset_dict`` are removed, so the folder
    always matches the card.
    """
    dataset_dict = _as_dict(dataset_dict)
    local_dir = Path(local_dir)
    data_dir = local_dir / "data"
    sizes: dict[str, int] = {}
    if data_dir.is_dir():
        for old in data_dir.glob("*-*-of-*.parquet"):
            if old.name.rsplit("-", 3)[0] not in dataset_dict:
                old.unlink()
    for split, ds in dataset_dict.items():
        files = write_parquet_shards(ds, data_dir, split, max_shard_size=max_shard_size)
        sizes[split] = sum(f.stat().st_size for f in files)
    card = build_card(dataset_dict, info, repo_id=repo_id, license=license, citation=citation,
                      description=description, parquet_sizes=sizes)
    card.save(str(local_dir / "README.md"))
    return local_dir


def publish_dataset(
    dataset_dict,
    repo_id: str,
    local_dir: str | Path | None = None,
    card: CardInfo | None = None,
    license: str | None = None,
    citation: str | None = None,
    push: bool = True,
    *,
    private: bool = True,
    token: str | None = None,
    description: str | None = None,
    max_shard_size: int | str = DEFAULT_MAX_SHARD_SIZE,
    commit_message: str = "Upload dataset with hf-fiqa",
) -> Path | None:
    """Write ``dataset_dict`` as a dataset repo (see module docstring) and optionally push it.

    ``card`` is one of the :mod:`hf_fiqa.data.cards` constants (or your own); ``license`` and
    ``citation`` override it. ``local_dir=None`` writes to a temporary folder (removed after
    the push; then the return value is ``None``). ``private`` defaults to ``True``: several
    source datasets forbid public redistribution - check the card's terms first.
    """
    if local_dir is None and not push:
        raise ValueError("nothing to do: push=False needs a local_dir to write to")
    tmp = tempfile.TemporaryDirectory(prefix="hf_fiqa_publish_") if local_dir is None else None
    folder = Path(local_dir) if local_dir is not None else Path(tmp.name)
    try:
        write_dataset_repo(dataset_dict, folder, card, repo_id=repo_id, license=license, citation=citation,
                           description=description, max_shard_size=max_shard_size)
        if push:
            push_dataset_folder(folder, repo_id, private=private, token=token, commit_message=commit_message)
    finally:
        if tmp is not None:
            tmp.cleanup()
    return folder if local_dir is not None else None


def push_dataset_folder(folder: str | Path, repo_id: str, *, private: bool = True, token: str | None = None,
                        commit_message: str = "Upload dataset with hf-fiqa") -> None:
    """Upload a written repo folder (:func:`write_dataset_repo`) to the Hub dataset repo ``repo_id``, creating
    it (private by default) when it does not exist: one ``upload_folder`` commit."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="dataset", commit_message=commit_message)
