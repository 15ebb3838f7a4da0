"""One conversion shared by detection and alignment, so both see the very same pixels.

Detection returns coordinates in the photo *after* EXIF rotation (see :mod:`hf_fiqa.io`); if
alignment decoded the photo differently (say, without the rotation) the landmarks would land
on the wrong pixels. Routing both through :func:`as_rgb_array` rules that out.
"""

from __future__ import annotations

import numpy as np

from ..io import ImageInput, load_image


def as_rgb_array(image: ImageInput) -> np.ndarray:
    """Return ``image`` as a C-contiguous ``(H, W, 3)`` uint8 RGB array.

    An array that already has that form is passed through without a copy (the fast path for
    a pipeline that decodes once); anything else (path, bytes, PIL image of any mode, other
    array dtypes or channel counts) goes through :func:`hf_fiqa.io.load_image`, which raises
    :class:`hf_fiqa.io.ImageReadError` naming the input when it cannot be read.
    """
    if isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3:
        if image.shape[0] == 0 or image.shape[1] == 0:
            return np.asarray(load_image(image))  # raises the usual "empty array" error
        return np.ascontiguousarray(image)
    return np.asarray(load_image(image))
