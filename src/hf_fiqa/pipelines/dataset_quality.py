"""Quality of one face per photo, for many methods at once: what FIQA evaluation needs.

Evaluation pairs each photo's quality with its recognition embedding, so both must describe the same face.
``hf-fiqa embed`` embeds the largest face of each photo; :func:`score_largest_faces` scores that same face
with every method, detecting each photo once and aligning it once per crop the methods ask for. With a
components stage every quality component of that face becomes one more method (``component:NAME``, its 0-100
value; NaN where it could not be computed), so an EDC table shows which single component predicts recognition
failure.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
from tqdm.auto import tqdm

from ..components import COMPONENT_NAMES, PhotoComponents
from ..faces.cropper import FaceCropper
from ..scorers import QualityScorer, crop_spec

COMPONENT_PREFIX = "component:"


def score_largest_faces(paths: Sequence[str], scorers: Mapping[str, QualityScorer], detector: Any,
                        chunk_size: int = 64, progress: bool = True, components: PhotoComponents | None = None,
                        problems: list[tuple[str, str]] | None = None) -> dict[str, np.ndarray]:
    """``{method: qualities}`` with one value per path: the largest face's quality, NaN without a face; with
    ``components``, also ``component:NAME`` for each of its components. ``problems`` (if given) receives
    ``(path, error or reason)`` for every photo without a face."""
    cropper = detector if isinstance(detector, FaceCropper) else FaceCropper(detector)
    specs = {name: crop_spec(scorer) for name, scorer in scorers.items()}
    wanted = list(dict.fromkeys(specs.values()))
    out = {name: np.full(len(paths), np.nan) for name in scorers}
    names = (components.names or COMPONENT_NAMES) if components is not None else ()
    out.update({COMPONENT_PREFIX + name: np.full(len(paths), np.nan) for name in names})
    bar = tqdm(total=len(paths), unit="photo", disable=not progress, desc="scoring faces")
    for start in range(0, len(paths), chunk_size):
        rows, crops = [], {spec: [] for spec in wanted}
        for row in range(start, min(start + chunk_size, len(paths))):
            bar.update(1)
            photo = cropper(paths[row], specs=wanted, select="largest", annotate=components)
            if not photo.faces:
                if problems is not None:
                    problems.append((str(paths[row]), photo.error or photo.reason or "no face"))
                continue
            rows.append(row)
            for spec in wanted:
                crops[spec].append(photo.crops[spec][0])
            for name, result in (photo.annotations[0].items() if photo.annotations else ()):
                if result.component is not None:
                    out[COMPONENT_PREFIX + name][row] = result.component
        if rows:
            for name, scorer in scorers.items():
                out[name][rows] = np.asarray(scorer.score(crops[specs[name]]), dtype=np.float64)
    bar.close()
    return out
