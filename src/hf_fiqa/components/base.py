"""The shared base of every quality component: the result record, OFIQ's mapping, and failure handling.

A component turns one face into a *native* value (a ratio, an angle, a fraction of pixels: the physical
quantity) and maps it onto the 0-100 *component* of ISO/IEC 29794-5 with OFIQ's function

    QC = clamp(round(h * (a + s * sigmoid((x - x0) / w))), 0, 100),   sigmoid(t) = 1 / (1 + exp(-t))

(``OFIQlib/modules/measures/Measure.h``; OFIQ rounds before clamping, half away from zero, like C's
``round``). Components whose standard mapping is not that sigmoid (pose, luminance, over-exposure, dynamic range,
illumination uniformity, head size, single face) override :meth:`Component.to_component`; the base still
rounds, clamps, and turns NaN into a reason.

Why one base owns failures: OFIQ writes -1 when a measure cannot be computed; a Python user gets ``None`` and a
sentence saying why instead, never an exception and never a number computed from garbage (a NaN landmark, a
face mostly outside the photo, a flat image). :meth:`Component.evaluate` is the only public entry point and it
does not raise: a bug in one component on one face costs that face's record, not the batch.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Sequence

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from .context import FaceBatch

__all__ = [
    "Component",
    "ComponentResult",
    "ComponentUnavailable",
    "Measured",
    "Sigmoid",
    "round_half_away",
]


@dataclass(frozen=True)
class ComponentResult:
    """One component of one face.

    ``native`` is the measured quantity in the component's own unit (``Component.unit``); ``component`` the
    0-100 value (higher is better). Both are ``None`` exactly when ``reason`` says why the component could not
    be computed. ``note`` says how a computed value was obtained when that differs from the standard path, e.g.
    ``"5-point estimate (no dense landmarks)"``: a value to read with more caution, not a failure.
    """

    name: str
    native: float | None
    component: int | None
    reason: str | None = None
    note: str | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None

    def as_dict(self) -> dict:
        return {"name": self.name, "native": self.native, "component": self.component, "reason": self.reason,
                "note": self.note}


class ComponentUnavailable(Exception):
    """Raised inside a measurement when a component cannot be computed for a stated reason (not a bug)."""


def round_half_away(x: np.ndarray) -> np.ndarray:
    """C's ``round`` (half away from zero), which OFIQ uses; Python's and numpy's round half to even."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


@dataclass(frozen=True)
class Sigmoid:
    """OFIQ's sigmoid quality mapping ``h * (a + s * sigmoid((x - x0) / w))`` (``SigmoidParameters``)."""

    x0: float
    w: float
    h: float = 100.0
    a: float = 0.0
    s: float = 1.0

    def __call__(self, x: np.ndarray | float) -> np.ndarray:
        """The unrounded, unclamped value (rounding and clamping are the base class's)."""
        t = (np.asarray(x, dtype=np.float64) - self.x0) / self.w
        with np.errstate(over="ignore"):  # exp overflow -> inf -> sigmoid 0: the right limit
            return self.h * (self.a + self.s / (1.0 + np.exp(-t)))


@dataclass
class Measured:
    """What a component's measurement returns for a batch of N faces.

    ``native``: (N,) float, NaN where not computed; ``reasons[i]`` says why face i was not computed (``None``
    where it was); ``notes[i]`` qualifies a computed value. ``reasons``/``notes`` may be ``None`` for "none".
    """

    native: np.ndarray
    reasons: Sequence[str | None] | None = None
    notes: Sequence[str | None] | None = None


class Component(ABC):
    """One quality component. Subclasses set ``name``, ``unit``, ``ofiq`` and either ``sigmoid`` or
    :meth:`to_component`, and implement :meth:`measure` over a :class:`~hf_fiqa.components.context.FaceBatch`
    (vectorised across its faces where that is cheap: the batch holds landmark arrays and per-face pixel
    statistics already computed once for every component)."""

    name: ClassVar[str]
    unit: ClassVar[str]
    #: OFIQ's parameters of this component's mapping, when it is the plain sigmoid.
    sigmoid: ClassVar[Sigmoid | None] = None
    #: One line: where this implementation differs from OFIQ (``""`` when it does not).
    differs_from_ofiq: ClassVar[str] = ""

    @abstractmethod
    def measure(self, batch: FaceBatch) -> Measured:
        """Native values of every face in ``batch``; may raise (the base turns that into reasons)."""

    def to_component(self, native: np.ndarray) -> np.ndarray:
        """Map native values to unrounded component values (vectorised); the default is ``self.sigmoid``."""
        if self.sigmoid is None:  # pragma: no cover - a subclass forgot both
            raise NotImplementedError(f"{type(self).__name__} sets neither `sigmoid` nor `to_component`")
        return self.sigmoid(native)

    def map(self, native: np.ndarray) -> np.ndarray:
        """Native values -> 0-100 component values as float (NaN stays NaN): OFIQ's round, then clamp."""
        native = np.asarray(native, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            return np.clip(round_half_away(self.to_component(native)), 0.0, 100.0)

    def evaluate(self, batch: FaceBatch) -> list[ComponentResult]:
        """One :class:`ComponentResult` per face of ``batch``; never raises."""
        try:
            return self._evaluate(batch)
        except Exception as exc:  # noqa: BLE001 - isolate the face that broke it
            if len(batch) == 1:
                return [self._failed(f"{type(exc).__name__}: {exc}")]
            return [self.evaluate(batch.take(i))[0] for i in range(len(batch))]

    def _evaluate(self, batch: FaceBatch) -> list[ComponentResult]:
        n = len(batch)
        try:
            measured = self.measure(batch)
        except ComponentUnavailable as exc:
            return [self._failed(str(exc)) for _ in range(n)]
        native = np.asarray(measured.native, dtype=np.float64).reshape(n)
        reasons = list(measured.reasons) if measured.reasons is not None else [None] * n
        notes = list(measured.notes) if measured.notes is not None else [None] * n
        valid = np.array([r is None for r in reasons]) & np.isfinite(native)
        mapped = np.full(n, np.nan)
        if valid.any():
            mapped[valid] = self.map(native[valid])
        results = []
        for i in range(n):
            if reasons[i] is not None:
                results.append(self._failed(reasons[i]))
            elif not math.isfinite(native[i]):
                results.append(self._failed(f"native value is not finite ({native[i]})"))
            elif not math.isfinite(mapped[i]):
                results.append(self._failed(f"mapping gave no value for native {native[i]:g}"))
            else:
                results.append(ComponentResult(self.name, float(native[i]), int(mapped[i]), None, notes[i]))
        return results

    def _failed(self, reason: str) -> ComponentResult:
        return ComponentResult(self.name, None, None, reason or "not computed", None)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, unit={self.unit!r})"
