"""ISO/IEC 29794-5-style quality components of a detected face, with OFIQ's definitions and mappings.

    from hf_fiqa.components import FaceInput, compute_components
    faces = detector.detect(photo)                                   # hf_fiqa.faces.YuNetDetector
    face = FaceInput.from_detection(photo, faces[0], all_faces=faces, dense_landmarks=mesh_or_None)
    results = compute_components(face)                               # {name: ComponentResult}
    results["head_pose_yaw"].native, results["head_pose_yaw"].component, results["eyes_open"].reason

Each :class:`ComponentResult` holds the native value (the measured quantity, unit in ``Component.unit``), the
0-100 component (OFIQ's mapping with OFIQ's parameters, except sharpness: see :mod:`.sharpness`), and either a
``reason`` why it could not be computed (never an exception, never a number from bad input) or a ``note`` when
the value is an estimate (5-point pose, extrapolated chin, face region from an average face shape).

:func:`compute_components_batch` takes many faces at once and shares the work: landmark geometry, the pose fit
and the histogram statistics run as array operations over the batch; the per-face pixel work (one warp, one
luminance image) runs once per face for all components.

One module per group of measures, each component a small class on :class:`~.base.Component`:
:mod:`.pose` (yaw, pitch, roll), :mod:`.geometry` (inter-eye distance, head size, crops, margins),
:mod:`.expression` (eyes open, mouth closed; need dense landmarks), :mod:`.exposure` (luminance, exposure,
dynamic range, illumination uniformity, natural colour), :mod:`.sharpness`, :mod:`.presence` (single face).
The registry below is an explicit tuple; importing registers nothing anywhere.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from .base import Component, ComponentResult, ComponentUnavailable, Measured, Sigmoid
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

__all__ = [
    "COMPONENTS",
    "COMPONENT_NAMES",
    "Component",
    "ComponentResult",
    "ComponentUnavailable",
    "FaceBatch",
    "FaceInput",
    "Measured",
    "REGISTRY",
    "Sigmoid",
    "compute_components",
    "compute_components_batch",
]

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
