"""Image processor of the face mesh: MediaPipe's face crop, its ``pixel_values``, and the way back.

How MediaPipe cuts the crop (sources: ``mediapipe`` v0.10.14,
``modules/face_landmark/face_detection_front_detection_to_roi.pbtxt`` and ``face_landmark_cpu.pbtxt``,
``calculators/util/detections_to_rects_calculator.cc``, ``rect_transformation_calculator.cc``,
``calculators/tensor/image_to_tensor_converter_opencv.cc``, ``landmark_projection_calculator.cc``;
the Tasks API ``face_landmarker_graph.cc`` uses the same numbers):

* ROI: a square centred on the face box, side ``1.5 x max(box width, box height)`` in pixels
  (``scale_x: 1.5, scale_y: 1.5, square_long: true``), rotated by
  ``atan2(y1 - y0, x1 - x0)`` where ``(x0, y0)`` is the image-left eye and ``(x1, y1)`` the
  image-right eye (``rotation_vector_target_angle_degrees: 0``: the eye line becomes horizontal).
  MediaPipe takes box and eyes from its BlazeFace detector; here any detector's box and two eye
  points (YuNet's first two landmarks) stand in. :func:`rois_from_landmarks` is MediaPipe's second
  ROI rule (``face_landmark_landmarks_to_roi.pbtxt``, used when tracking): the bounding box of the
  468 landmarks, rotation from landmark 33 to landmark 263, same scale.
* Crop: ``cv::warpPerspective`` with bilinear interpolation and a replicated border, mapping the
  ROI's corners onto the corners ``(0, 0)``, ``(192, 192)`` of the output in OpenCV's pixel-centre
  coordinates; output pixel ``(u, v)`` samples the photo at
  ``centre + R(angle) @ ((u / 192 - 0.5) * side, (v / 192 - 0.5) * side)``. The 8-bit result is
  scaled to [0, 1]. :func:`crop_rois` does the same in numpy (exact bilinear weights where OpenCV
  rounds them to 1/32 pixel, so a crop may differ from OpenCV's by one grey level here and there).
* Back to the photo: ``p = centre + R(angle) @ ((x / 192 - 0.5) * side, (y / 192 - 0.5) * side)``
  and ``z * side / 192`` (``TensorsToLandmarks`` normalises by 192, ``LandmarkProjection`` scales
  ``z`` like ``x``).

Photo coordinates throughout are OpenCV's: pixel ``(i, j)`` is centred on ``(x, y) = (j, i)``; YuNet
boxes and landmarks use the same.

This file is copied next to saved weights for ``trust_remote_code=True`` loading, so it imports
only numpy, PIL and transformers.
"""

from __future__ import annotations

import os
from typing import Any, Iterable, Sequence, Union

import numpy as np
from PIL import Image
from transformers.image_processing_utils import BaseImageProcessor, BatchFeature

ImageLike = Union[str, os.PathLike, Image.Image, np.ndarray, Any]

# MediaPipe's mesh indices of the outer eye corners, image-left then image-right (the person's
# right eye first): the rotation of the landmark-based ROI.
MESH_EYE_CORNERS: tuple[int, int] = (33, 263)


# Copied from hf_fiqa.models.dlib_resnet.image_processing_dlib_resnet._to_rgb_uint8
def _to_rgb_uint8(image: ImageLike, index: int) -> np.ndarray:
    """One input as an ``(H, W, 3)`` uint8 RGB array; raises ``ValueError`` naming the input."""
    if isinstance(image, (str, os.PathLike)):
        try:
            with Image.open(image) as opened:
                image = opened.convert("RGB")
        except OSError as exc:
            raise ValueError(f"image {index} ({os.fspath(image)!r}) cannot be read: {exc}") from None
    if isinstance(image, Image.Image):
        if image.mode != "RGB":
            image = image.convert("RGB")  # L/P/1/I -> grey replicated; RGBA/LA -> alpha dropped
        return np.asarray(image, dtype=np.uint8)
    if hasattr(image, "detach") and hasattr(image, "cpu"):  # a torch tensor, without importing torch
        image = image.detach().cpu().numpy()
    array = np.asarray(image)
    if array.dtype == bool or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(
            f"image {index}: expected 8-bit pixel values (an integer array), got dtype {array.dtype}; "
            "convert float images with (x * 255).round().astype(np.uint8) if they are in [0, 1]"
        )
    if array.size and (array.min() < 0 or array.max() > 255):
        raise ValueError(f"image {index}: pixel values must lie in 0..255, got {array.min()}..{array.max()}")
    array = array.astype(np.uint8, copy=False)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 2, 3, 4):
        raise ValueError(
            f"image {index}: expected (H, W), (H, W, 1), (H, W, 2), (H, W, 3) or (H, W, 4) pixels, got shape {array.shape}"
        )
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(f"image {index} is empty (shape {array.shape})")
    channels = array.shape[2]
    if channels in (1, 2):  # grey (+ alpha)
        array = np.repeat(array[:, :, :1], 3, axis=2)
    elif channels == 4:  # RGBA
        array = array[:, :, :3]
    return np.ascontiguousarray(array)



def _as_points(value: Any, name: str, count: int) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64)
    if array.ndim != 3 or array.shape[0] != count or array.shape[2] < 2 or array.shape[1] < 2:
        raise ValueError(f"{name} must be (N, K >= 2, 2+) points for the N = {count} faces, got shape {array.shape}")
    if not np.isfinite(array[:, :, :2]).all():
        raise ValueError(f"{name} must be finite")
    return array


def face_mesh_rois(boxes: Any, eye_points: Any = None, scale: float = 1.5) -> np.ndarray:
    """MediaPipe's face ROIs ``(N, 4)``: centre x, centre y, side (pixels) and rotation (radians).

    Args:
        boxes: ``(N, 4)`` face boxes ``x1, y1, x2, y2`` in photo pixels (one box: ``(4,)``).
        eye_points: optional ``(N, K, 2)`` points whose first two are the image-left and the
            image-right eye (YuNet's / ``DetectedFace.landmarks`` order); without them the crop is
            not rotated.
        scale: side of the square as a multiple of the box's longer side (MediaPipe: 1.5).
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.ndim == 1:
        boxes = boxes[None]
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must be (N, 4) x1, y1, x2, y2, got shape {boxes.shape}")
    if not np.isfinite(boxes).all():
        raise ValueError("boxes must be finite")
    width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    if (width <= 0).any() or (height <= 0).any():
        raise ValueError("every box needs x2 > x1 and y2 > y1")
    rois = np.zeros((len(boxes), 4))
    rois[:, 0] = (boxes[:, 0] + boxes[:, 2]) / 2
    rois[:, 1] = (boxes[:, 1] + boxes[:, 3]) / 2
    rois[:, 2] = float(scale) * np.maximum(width, height)
    if eye_points is not None:
        eyes = _as_points(eye_points, "eye_points", len(boxes))
        delta = eyes[:, 1, :2] - eyes[:, 0, :2]
        rois[:, 3] = np.arctan2(delta[:, 1], delta[:, 0])
    return rois


def rois_from_landmarks(landmarks: Any, scale: float = 1.5, eye_corners: Sequence[int] = MESH_EYE_CORNERS) -> np.ndarray:
    """MediaPipe's ROI from a previous mesh (``face_landmark_landmarks_to_roi.pbtxt``): the bounding
    box of all ``(N, L, 2+)`` photo landmarks, rotated by the line from ``eye_corners[0]`` to ``eye_corners[1]``."""
    points = _as_points(landmarks, "landmarks", len(np.asarray(landmarks)))
    low, high = points[:, :, :2].min(axis=1), points[:, :, :2].max(axis=1)
    boxes = np.concatenate([low, np.maximum(high, low + 1e-6)], axis=1)
    return face_mesh_rois(boxes, points[:, list(eye_corners), :2], scale=scale)


def roi_to_photo(rois: Any, size: int) -> np.ndarray:
    """``(N, 2, 3)`` affine maps from crop coordinates (MediaPipe's convention, the crop spanning
    ``[0, size]``) to photo coordinates: ``photo = A[:, :2] @ crop + A[:, 2]``."""
    rois = np.asarray(rois, dtype=np.float64).reshape(-1, 4)
    cx, cy, side, angle = rois.T
    k = side / float(size)
    cos, sin = np.cos(angle) * k, np.sin(angle) * k
    matrices = np.zeros((len(rois), 2, 3))
    matrices[:, 0, 0], matrices[:, 0, 1] = cos, -sin
    matrices[:, 1, 0], matrices[:, 1, 1] = sin, cos
    matrices[:, 0, 2] = cx - (cos - sin) * size / 2
    matrices[:, 1, 2] = cy - (sin + cos) * size / 2
    return matrices


def _bilinear(rgb: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear samples of ``rgb`` at float coordinates (pixel centres at integers), border replicated;
    rounded to uint8 like OpenCV's 8-bit warps."""
    height, width = rgb.shape[:2]
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = (x - x0).astype(np.float32)[..., None], (y - y0).astype(np.float32)[..., None]
    x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
    left, right = np.clip(x0, 0, width - 1), np.clip(x0 + 1, 0, width - 1)
    top, bottom = np.clip(y0, 0, height - 1) * width, np.clip(y0 + 1, 0, height - 1) * width
    flat = rgb.reshape(-1, rgb.shape[2])

    def row(offset: np.ndarray) -> np.ndarray:
        a = np.take(flat, offset + left, axis=0).astype(np.float32)
        return a + (np.take(flat, offset + right, axis=0) - a) * fx

    upper = row(top)
    out = upper + (row(bottom) - upper) * fy
    return np.clip(np.floor(out + 0.5), 0, 255).astype(np.uint8)


def crop_rois(image: ImageLike, rois: Any, size: int = 192) -> np.ndarray:
    """Cut each ROI of ``image`` as MediaPipe does: ``(N, size, size, 3)`` uint8 RGB crops, upright."""
    rgb = _to_rgb_uint8(image, 0)
    rois = np.asarray(rois, dtype=np.float64).reshape(-1, 4)
    if not np.isfinite(rois).all() or (rois[:, 2] <= 0).any():
        raise ValueError("rois must be finite with a positive side")
    if not len(rois):
        return np.zeros((0, size, size, 3), np.uint8)
    grid = np.arange(size, dtype=np.float64)
    matrices = roi_to_photo(rois, size)[:, :, :, None, None]  # (N, 2, 3, 1, 1)
    u, v = grid[None, :], grid[:, None]  # output column, row
    x = matrices[:, 0, 0] * u + matrices[:, 0, 1] * v + matrices[:, 0, 2]
    y = matrices[:, 1, 0] * u + matrices[:, 1, 1] * v + matrices[:, 1, 2]
    return _bilinear(rgb, x, y)


def project_landmarks(landmarks: Any, rois: Any, size: int = 192) -> np.ndarray:
    """Crop landmarks ``(N, L, 3)`` (pixels of the ``size`` crop) -> photo pixels; ``z`` scaled like ``x``."""
    points = np.asarray(landmarks, dtype=np.float64)
    rois = np.asarray(rois, dtype=np.float64).reshape(-1, 4)
    if points.ndim != 3 or points.shape[0] != len(rois) or points.shape[2] not in (2, 3):
        raise ValueError(f"landmarks must be (N, L, 2 or 3) for the N = {len(rois)} rois, got shape {points.shape}")
    matrices = roi_to_photo(rois, size)
    out = points.copy()
    out[:, :, :2] = np.einsum("nij,nlj->nli", matrices[:, :, :2], points[:, :, :2]) + matrices[:, None, :, 2]
    if points.shape[2] == 3:
        out[:, :, 2] = points[:, :, 2] * (rois[:, 2] / size)[:, None]
    return out.astype(np.float32)


class FaceMeshImageProcessor(BaseImageProcessor):
    """Face crops -> ``pixel_values`` ``(B, 3, size, size)`` float32 RGB in [0, 1]; photo + boxes -> crops.

    * :meth:`preprocess` (``processor(crops)``): crops already cut (any size; others are stretched to
      ``size`` x ``size`` with the same bilinear rule MediaPipe applies to a whole frame).
    * :meth:`crop_faces`: cut MediaPipe's ROIs from a photo given face boxes (and eye points).
    * :meth:`post_process_landmarks`: model landmarks (crop pixels) -> photo pixels.

    Args:
        size: side of the crop the network reads (192).
        roi_scale: ROI side over the longer box side (MediaPipe: 1.5).
        rescale_factor: 8-bit value -> model input (1 / 255: MediaPipe's [0, 1] range).
    """
    # save_pretrained writes this code and an auto_map beside the weights (trust_remote_code loading)
    _auto_class = "AutoImageProcessor"

    model_input_names = ["pixel_values"]

    def __init__(self, size: int = 192, roi_scale: float = 1.5, rescale_factor: float = 1 / 255, **kwargs: Any):
        super().__init__(**kwargs)
        if isinstance(size, dict):  # tolerate transformers' {"height": h, "width": w} convention
            height, width = int(size.get("height", 0)), int(size.get("width", 0))
            if height != width:
                raise ValueError(f"FaceMeshImageProcessor takes square crops, got size {size}")
            size = height
        if int(size) != size or int(size) < 1:
            raise ValueError(f"size must be a positive integer, got {size!r}")
        if not float(roi_scale) > 0 or not float(rescale_factor) > 0:
            raise ValueError(f"roi_scale and rescale_factor must be positive, got {roi_scale!r}, {rescale_factor!r}")
        self.size = int(size)
        self.roi_scale = float(roi_scale)
        self.rescale_factor = float(rescale_factor)

    def to_crop(self, image: ImageLike, index: int = 0) -> np.ndarray:
        """One input as the ``(size, size, 3)`` uint8 crop the network sees (stretched if needed)."""
        rgb = _to_rgb_uint8(image, index)
        height, width = rgb.shape[:2]
        if (height, width) == (self.size, self.size):
            return rgb
        grid = np.arange(self.size, dtype=np.float64)
        x = np.broadcast_to(grid[None, :] * (width / self.size), (self.size, self.size))
        y = np.broadcast_to(grid[:, None] * (height / self.size), (self.size, self.size))
        return _bilinear(rgb, x, y)

    def preprocess(
        self,
        images: ImageLike | Iterable[ImageLike],
        return_tensors: str | None = "pt",
        **kwargs: Any,
    ) -> BatchFeature:
        """Turn one crop or a list of crops into ``pixel_values``; a ``(B, H, W, 3)`` array is a batch."""
        if isinstance(images, (str, os.PathLike, Image.Image)):
            images = [images]
        elif isinstance(images, np.ndarray) or (hasattr(images, "detach") and hasattr(images, "ndim")):
            images = list(images) if images.ndim == 4 else [images]
        crops = [self.to_crop(image, index) for index, image in enumerate(images)]
        if not crops:
            raise ValueError("FaceMeshImageProcessor.preprocess got no images")
        pixels = np.stack(crops).astype(np.float32) * np.float32(self.rescale_factor)
        data = {"pixel_values": np.ascontiguousarray(pixels.transpose(0, 3, 1, 2))}
        return BatchFeature(data=data, tensor_type=return_tensors)

    def rois(self, boxes: Any, eye_points: Any = None) -> np.ndarray:
        """:func:`face_mesh_rois` with this processor's ``roi_scale``."""
        return face_mesh_rois(boxes, eye_points, scale=self.roi_scale)

    def crop_faces(self, image: ImageLike, boxes: Any = None, eye_points: Any = None,
                   rois: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """``(crops (N, size, size, 3) uint8, rois (N, 4))`` for the faces in ``boxes`` (or given ``rois``)."""
        if rois is None:
            if boxes is None:
                raise ValueError("crop_faces needs boxes or rois")
            rois = self.rois(boxes, eye_points)
        rois = np.asarray(rois, dtype=np.float64).reshape(-1, 4)
        return crop_rois(image, rois, self.size), rois

    def post_process_landmarks(self, landmarks: Any, rois: Any) -> np.ndarray:
        """Model landmarks ``(N, L, 3)`` in crop pixels (a torch tensor or array) -> photo pixels, float32."""
        if hasattr(landmarks, "detach"):
            landmarks = landmarks.detach().float().cpu().numpy()
        return project_landmarks(landmarks, rois, self.size)


__all__ = [
    "MESH_EYE_CORNERS",
    "FaceMeshImageProcessor",
    "crop_rois",
    "face_mesh_rois",
    "project_landmarks",
    "roi_to_photo",
    "rois_from_landmarks",
]
