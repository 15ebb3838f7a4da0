"""The registry of components and the calls that run them over faces (re-exported by :mod:`hf_fiqa.components`).

The registry is an explicit tuple; importing registers nothing anywhere.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from .base import Component, ComponentResult
from .context import FaceBatch
from .exposure import (
    DynamicRange,
    IlluminationUniformity,
    LuminanceMean,
    LuminanceVariance,
    NaturalColour,
    OverExposure,
    UnderExposure,
)
from .expression import EyesOpen, MouthClosed
from .geometry import HeadSize, InterEyeDistance, LeftwardCrop, MarginAbove, MarginBelow, RightwardCrop
from .inputs import FaceInput
from .pose import HeadPosePitch, HeadPoseRoll, HeadPoseYaw
from .presence import SingleFacePresent
from .sharpness import Sharpness

__all__ = ["COMPONENTS", "COMPONENT_NAMES", "REGISTRY", "as_columns", "as_records", "compute_components",
           "compute_components_batch"]

#: Every component, in report order.
COMPONENTS: tuple[Component, ...] = (
    HeadPoseYaw(),
    HeadPosePitch(),
    HeadPoseRoll(),
    EyesOpen(),
    MouthClosed(),
    InterEyeDistance(),
    HeadSize(),
    LeftwardCrop(),
    RightwardCrop(),
    MarginAbove(),
    MarginBelow(),
    LuminanceMean(),
    LuminanceVariance(),
    UnderExposure(),
    OverExposure(),
    DynamicRange(),
    IlluminationUniformity(),
    NaturalColour(),
    SingleFacePresent(),
    Sharpness(),
)
REGISTRY: dict[str, Component] = {c.name: c for c in COMPONENTS}
COMPONENT_NAMES: tuple[str, ...] = tuple(REGISTRY)
assert len(REGISTRY) == len(COMPONENTS), "component names must be unique"


def _select(names: Iterable[str] | None) -> list[Component]:
    if names is None:
        return list(COMPONENTS)
    if isinstance(names, str):
        names = [names]
    names = list(names)
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise ValueError(f"unknown component(s) {unknown}; known: {', '.join(COMPONENT_NAMES)}")
    return [REGISTRY[n] for n in dict.fromkeys(names)]


def compute_components_batch(faces: Sequence[FaceInput],
                             names: Iterable[str] | None = None) -> list[dict[str, ComponentResult]]:
    """``[{name: ComponentResult}]``, one dict per face in order. ``names`` selects components (default all;
    an unknown name is a ``ValueError``). Never raises for a bad face: its records carry reasons."""
    selected = _select(names)
    batch = FaceBatch(faces)
    columns = {c.name: c.evaluate(batch) for c in selected}
    return [{name: results[i] for name, results in columns.items()} for i in range(len(batch))]


def compute_components(face: FaceInput, names: Iterable[str] | None = None) -> dict[str, ComponentResult]:
    """``{name: ComponentResult}`` for one face (see :func:`compute_components_batch`)."""
    return compute_components_batch([face], names)[0]


def as_records(results: dict[str, ComponentResult]) -> dict[str, dict]:
    """``{name: {native, component, reason, note}}``: one face's components as plain JSON-ready values."""
    return {name: {k: v for k, v in r.as_dict().items() if k != "name"} for name, r in results.items()}


def as_columns(records: dict[str, dict], phrases: Sequence[str] = ()) -> dict[str, object]:
    """Flat table columns of one face's :func:`as_records`: ``NAME`` (0-100) and ``NAME_native`` per component,
    ``component_reasons`` ("name: reason; ...") for those not computed, ``concerns`` joined the same way."""
    row: dict[str, object] = {}
    reasons = []
    for name, value in records.items():
        row[name], row[f"{name}_native"] = value["component"], value["native"]
        if value["reason"]:
            reasons.append(f"{name}: {value['reason']}")
    row["component_reasons"] = "; ".join(reasons)
    row["concerns"] = "; ".join(phrases)
    return row
