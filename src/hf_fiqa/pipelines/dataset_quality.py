"""Quality of one face per photo, for many methods at once: what FIQA evaluation needs.

Evaluation pairs each photo's quality with its recognition embedding, so both must describe the same face.
``hf-fiqa embed`` embeds the largest face of each photo; :func:`score_largest_faces` scores that same face
with every method, detecting and aligning each photo once (at every crop size the methods ask for).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from tqdm.auto import tqdm

from ..faces.alignment import align_faces
from ..io import ImageReadError, load_image
from ..scoring import QualityScorer


def score_largest_faces(paths: Sequence[str], scorers: Mapping[str, QualityScorer], detector,
                        chunk_size: int = 64, progress: bool = True) -> dict[str, np.ndarray]:
    """``{method: qualities}`` with one value per path: the largest face's quality, NaN without a face."""
    sizes = sorted({s.crop_size for s in scorers.values()})
    out = {name: np.full(len(paths), np.nan) for name in scorers}
    bar = tqdm(total=len(paths), unit="photo", disable=not progress, desc="scoring faces")
    for start in range(0, len(paths), chunk_size):
        rows, crops = [], {size: [] for size in sizes}
        for row in range(start, min(start + chunk_size, len(paths))):
            bar.update(1)
            try:
                rgb = np.asarray(load_image(paths[row]))
            except ImageReadError:
                continue
            faces = detector.detect(rgb)
            if not faces:
                continue
            largest = max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
            aligned = align_faces(rgb, [largest], sizes=sizes)
            rows.append(row)
            for size in sizes:
                crops[size].append(aligned[size][0])
        if rows:
            for name, scorer in scorers.items():
                out[name][rows] = np.asarray(scorer.score(crops[scorer.crop_size]), dtype=np.float64)
    bar.close()
    return out
