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
The registry (:mod:`.registry`) is an explicit tuple; importing registers nothing anywhere.

Around them: :mod:`.photo` runs the face mesh and the components for the faces of a decoded photo (the stage
pipelines and commands share), :mod:`.explain` names low components in words and holds the optional
acceptance rule.
"""

from __future__ import annotations

from .base import Component, ComponentResult, ComponentUnavailable, Measured, Sigmoid
from .context import FaceBatch
from .explain import DEFAULT_MINIMA, AcceptanceRule, concerns, describe
from .inputs import FaceInput
from .photo import FACE_MESH_ENV, PhotoComponents, load_face_mesh
from .registry import (
    COMPONENT_NAMES,
    COMPONENTS,
    REGISTRY,
    as_columns,
    as_records,
    compute_components,
    compute_components_batch,
)

__all__ = [
    "AcceptanceRule",
    "COMPONENTS",
    "COMPONENT_NAMES",
    "Component",
    "ComponentResult",
    "ComponentUnavailable",
    "DEFAULT_MINIMA",
    "FACE_MESH_ENV",
    "FaceBatch",
    "FaceInput",
    "Measured",
    "PhotoComponents",
    "REGISTRY",
    "Sigmoid",
    "as_columns",
    "as_records",
    "compute_components",
    "compute_components_batch",
    "concerns",
    "describe",
    "load_face_mesh",
]
