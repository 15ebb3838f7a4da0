"""Why a face scored low, in words, and an optional "acceptable" rule over the unified score and components.

:func:`describe` turns one low component into what a person checks in the photo ("eyes closed", "head turned 40
deg to the image right", "face cut by the image's left edge"); :func:`concerns` lists the lowest ones of a face.
:class:`AcceptanceRule` is the configurable overall rule: a face is acceptable when the unified quality and each
chosen component reach their minimum. Its defaults (:data:`DEFAULT_MINIMA`) pick the components whose failure
breaks recognition or the capture itself, each at 50, the midpoint of its mapping (for pose: 45 deg):

* head pose yaw and pitch (a turned or nodding head hides half the face);
* eyes open (closed eyes lose the most discriminative region);
* leftward and rightward crop (a face cut by the image edge);
* under- and over-exposure prevention (clipped face pixels carry nothing).

Left out on purpose: roll (alignment undoes in-plane rotation), mouth closed and the margins above/below and
head size (passport framing rules that do not decide whether a face is recognisable), inter-eye distance (the
unified score already falls on small faces). A component that could not be computed (e.g. eyes open without a
face-mesh model) is listed as unchecked and does not fail the face.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping

from .base import ComponentResult
from .registry import REGISTRY

__all__ = ["AcceptanceRule", "DEFAULT_MINIMA", "DEFAULT_MIN_QUALITY", "LOW", "concerns", "describe"]

#: A component below this is named among a face's concerns (the midpoint of OFIQ's mappings).
LOW = 50
DEFAULT_MIN_QUALITY = 50.0
DEFAULT_MINIMA: Mapping[str, int] = {
    "head_pose_yaw": 50,
    "head_pose_pitch": 50,
    "eyes_open": 50,
    "leftward_crop": 50,
    "rightward_crop": 50,
    "under_exposure_prevention": 50,
    "over_exposure_prevention": 50,
}


def _pose(value: float, positive: str, negative: str, verb: str) -> str:
    return f"{verb} {abs(value):.0f}° {positive if value > 0 else negative}"


def describe(result: ComponentResult) -> str:
    """A short phrase for what a (low) component means in this photo, with its native value."""
    v, name = result.native, result.name
    if v is None:
        return f"{name.replace('_', ' ')} not computed: {result.reason}"
    phrases = {
        "head_pose_yaw": lambda: _pose(v, "to the image right", "to the image left", "head turned"),
        "head_pose_pitch": lambda: _pose(v, "up", "down", "head tilted"),
        "head_pose_roll": lambda: _pose(v, "counter-clockwise", "clockwise", "head leaning"),
        "eyes_open": lambda: f"eyes closed or nearly closed (opening {v:.3f} of eye-to-chin)",
        "mouth_closed": lambda: f"mouth open (lip gap {v:.2f} of eye-to-chin)",
        "inter_eye_distance": lambda: f"face small in the photo ({v:.0f} px between the eyes)",
        "head_size": lambda: "head " + ("large" if v > 0.45 else "small") + f" in the frame ({v:.2f} of its height)",
        "leftward_crop": lambda: "face cut by, or touching, the image's left edge",
        "rightward_crop": lambda: "face cut by, or touching, the image's right edge",
        "margin_above": lambda: "face cut by, or close to, the image's top edge",
        "margin_below": lambda: "face cut by, or close to, the image's bottom edge",
        "luminance_mean": lambda: ("face too dark" if v < 0.5 else "face too bright") + f" (mean luminance {v:.2f})",
        "luminance_variance": lambda: f"flat or harsh contrast on the face (luminance variance {v:.3f})",
        "under_exposure_prevention": lambda: f"face under-exposed ({100 * v:.0f} % of its pixels near black)",
        "over_exposure_prevention": lambda: f"face over-exposed ({100 * v:.0f} % of its pixels near white)",
        "dynamic_range": lambda: f"little tonal range on the face ({v:.1f} bits)",
        "illumination_uniformity": lambda: f"uneven light across the face (cheek histograms overlap {v:.2f})",
        "natural_colour": lambda: f"unnatural skin colour (CIELAB distance {v:.0f} from skin tones)",
        "single_face_present": lambda: f"another face nearly as large in the photo (area ratio {v:.2f})",
        "sharpness": lambda: f"face blurred (sharpness {v:.3f})",
    }
    build = phrases.get(name)
    return build() if build else f"{name.replace('_', ' ')} low ({v:g})"


def concerns(results: Mapping[str, ComponentResult], below: int = LOW, limit: int | None = 3) -> list[str]:
    """Phrases for the computed components below ``below``, lowest first (at most ``limit``)."""
    low = sorted((r for r in results.values() if r.component is not None and r.component < below),
                 key=lambda r: (r.component, r.name))
    return [describe(r) for r in (low if limit is None else low[:limit])]


@dataclass(frozen=True)
class AcceptanceRule:
    """A face is acceptable when its unified quality is at least ``min_quality`` (``None``: not checked) and each
    component named in ``minima`` is at least its minimum; components that could not be computed are unchecked."""

    min_quality: float | None = DEFAULT_MIN_QUALITY
    minima: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_MINIMA))

    def __post_init__(self) -> None:
        unknown = [n for n in self.minima if n not in REGISTRY]
        if unknown:
            raise ValueError(f"acceptance rule: unknown component(s) {unknown}; known: {', '.join(REGISTRY)}")

    @classmethod
    def parse(cls, spec: str) -> AcceptanceRule:
        """``"default"`` or comma-separated ``NAME>=VALUE`` terms, ``quality`` for the unified score:
        ``"quality>=60,eyes_open>=40,head_pose_yaw>=50"``. Only the named terms are checked."""
        spec = spec.strip()
        if spec == "default":
            return cls()
        minimum_quality, minima = None, {}
        for term in filter(None, (t.strip() for t in spec.split(","))):
            match = re.fullmatch(r"([a-z_]+)\s*>=\s*([-+0-9.eE]+)", term)
            if not match:
                raise ValueError(f"acceptance rule: expected NAME>=VALUE, got '{term}' in '{spec}'")
            name, value = match.group(1), float(match.group(2))
            if name == "quality":
                minimum_quality = value
            else:
                minima[name] = int(round(value))
        if minimum_quality is None and not minima:
            raise ValueError(f"acceptance rule '{spec}' names nothing to check")
        return cls(minimum_quality, minima)

    def check(self, quality: float | None, results: Mapping[str, ComponentResult]) -> dict:
        """``{"acceptable": bool, "failed": [phrases], "unchecked": [names]}`` for one face."""
        failed, unchecked = [], []
        if self.min_quality is not None:
            if quality is None:
                unchecked.append("quality")
            elif quality < self.min_quality:
                failed.append(f"quality {quality:.1f} < {self.min_quality:g}")
        for name, minimum in self.minima.items():
            result = results.get(name)
            if result is None or result.component is None:
                unchecked.append(name)
            elif result.component < minimum:
                failed.append(f"{name} {result.component} < {minimum}: {describe(result)}")
        return {"acceptable": not failed, "failed": failed, "unchecked": unchecked}
