"""Quality of one face per photo, for many methods at once: what FIQA evaluation needs.

Evaluation pairs each photo's quality with its recognition embedding, so both must describe the same face.
``hf-fiqa embed`` embeds the largest face of each photo; :func:`score_largest_faces` scores that same face
with every method, detecting each photo once and aligning it once per crop the methods ask for.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
from tqdm.auto import tqdm

from ..faces.cropper import FaceCropper
from ..scorers import QualityScorer, crop_spec


def score_largest_faces(paths: Sequence[str], scorers: Mapping[str, QualityScorer], detector: Any,
                        chunk_size: int = 64, progress: bool = True) -> dict[str, np.ndarray]:
    """``{method: qualities}`` with one value per path: the largest face's quality, NaN without a face."""
    cropper = detector if isinstance(detector, FaceCropper) else FaceCropper(detector)
    specs = {name: crop_spec(scorer) for name, scorer in scorers.items()}
    wanted = list(dict.fromkeys(specs.values()))
    out = {name: np.full(len(paths), np.nan) for name in scorers}
    bar = tqdm(total=len(paths), unit="photo", disable=not progress, desc="scoring faces")
    for start in range(0, len(paths), chunk_size):
        rows, crops = [], {spec: [] for spec in wanted}
        for row in range(start, min(start + chunk_size, len(paths))):
            bar.update(1)
            photo = cropper(paths[row], specs=wanted, select="largest")
            if not photo.faces:
                continue
            rows.append(row)
            for spec in wanted:
                crops[spec].append(photo.crops[spec][0])
        if rows:
            for name, scorer in scorers.items():
                out[name][rows] = np.asarray(scorer.score(crops[specs[name]]), dtype=np.float64)
    bar.close()
    return out
