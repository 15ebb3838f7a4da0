"""The project's datasets as Hugging Face ``datasets`` objects, plus conversion and publishing.

One loader per source, each returning typed ``Dataset``/``DatasetDict`` objects::

    from hf_fiqa.data import load_koniq10k, load_tid2013, load_ffhq, load_ms1m, load_kface
    from hf_fiqa.data import load_identity_folder, load_verification_pairs, load_cfp, read_cfp_pairs
    from hf_fiqa.data import align_dataset, degrade_dataset, publish_dataset

Names are resolved lazily (PEP 562) so that importing this package - which the ``hf-fiqa``
CLI does for ``hf-fiqa dataset`` - does not import ``datasets``/``pyarrow`` up front.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    # errors
    "DatasetFormatError": "errors",
    "SkipLog": "errors",
    # image quality datasets
    "load_koniq10k": "koniq",
    "load_koniq10k_labels": "koniq",
    "read_maniqa_label_list": "koniq",
    "load_tid2013": "tid2013",
    "load_tid2013_labels": "tid2013",
    "tid2013_reference_splits": "tid2013",
    "DISTORTION_NAMES": "tid2013",
    "load_ffhq": "ffhq",
    # face recognition datasets
    "RecordIOReader": "recordio",
    "RecordIOError": "recordio",
    "IRHeader": "recordio",
    "unpack_record": "recordio",
    "read_index": "recordio",
    "MS1MRecords": "ms1m",
    "load_ms1m": "ms1m",
    "read_property": "ms1m",
    "rec_to_parquet": "rec2parquet",
    "read_verification_bin": "verification",
    "load_verification_pairs": "verification",
    "load_verification_sets": "verification",
    "RestrictedUnpickler": "verification",
    "UnsafePickleError": "verification",
    "load_kface": "kface",
    "load_identity_folder": "identity_folder",
    "load_cfp": "cfp",
    "read_cfp_pairs": "cfp",
    # derived datasets and publishing
    "align_dataset": "aligned",
    "degrade": "degradations",
    "degrade_dataset": "degradations",
    "DEGRADATIONS": "degradations",
    "publish_dataset": "publish",
    "write_dataset_repo": "publish",
    "push_dataset_folder": "publish",
    "build_card": "publish",
    "CardInfo": "cards",
    "CARDS": "cards",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
