"""Dense face landmarks for whole photos: MediaPipe's crop -> :class:`FaceMeshModel` -> photo coordinates.

:class:`FaceMeshLandmarker` is what a later stage (ISO/IEC 29794-5-style quality components: eyes
open, mouth closed, head pose) calls with a photo and the faces a detector found::

    landmarker = FaceMeshLandmarker.from_pretrained("out/face-mesh")
    result = landmarker(rgb, boxes, eye_points)  # boxes (N, 4) x1 y1 x2 y2; eye_points e.g. YuNet's (N, 5, 2)
    result = landmarker.run_faces(rgb, detector.detect(rgb))  # the same from DetectedFace records
    result.landmarks  # (N, 468, 3) float32: x, y in photo pixels, z relative depth on the scale of x
    result.presence   # (N,) MediaPipe's face presence score (sigmoid); result.present: >= config threshold

All faces of a call run as one batch (``batch_size`` at a time). ``refine=True`` runs the model a
second time on MediaPipe's landmark-based ROI (the ROI its tracker uses on the next video frame),
which makes the crop independent of the detector's box convention.

This module is not part of the remote code saved beside the weights; it imports only numpy, torch
and its siblings.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from .image_processing_face_mesh import FaceMeshImageProcessor, ImageLike, _to_rgb_uint8, rois_from_landmarks
from .modeling_face_mesh import FaceMeshModel


@dataclass
class FaceMeshResult:
    """Landmarks of N faces of one photo.

    Args:
        landmarks: ``(N, L, 3)`` float32 ``(x, y, z)``: photo pixels (OpenCV convention, pixel centres at
            integers) and relative depth scaled like ``x``.
        presence: ``(N,)`` float32 face presence score in [0, 1].
        rois: ``(N, 4)`` the crops used: centre x, centre y, side (pixels), rotation (radians).
        crop_landmarks: ``(N, L, 3)`` the model's raw output, in pixels of the crop.
        threshold: MediaPipe's presence threshold (``config.presence_threshold``).
    """

    landmarks: np.ndarray
    presence: np.ndarray
    rois: np.ndarray
    crop_landmarks: np.ndarray
    threshold: float = 0.5

    @property
    def present(self) -> np.ndarray:
        """``(N,)`` bool: MediaPipe keeps a face's landmarks only when this holds."""
        return self.presence >= self.threshold

    def __len__(self) -> int:
        return len(self.presence)


class FaceMeshLandmarker:
    """Runs :class:`FaceMeshModel` on the faces of photos (see the module docstring).

    Args:
        model: a converted :class:`FaceMeshModel` (``hf-fiqa convert face-mesh``).
        processor: its :class:`FaceMeshImageProcessor` (default: one matching ``model.config``).
        batch_size: faces per forward pass.
        refine: default of :meth:`__call__`'s ``refine``.
        channels_last: run the model in channels-last memory format (moves ``model``'s weights in place):
            the same outputs up to float rounding, about 1.5x faster on CPU (torch 2.14).
    """

    def __init__(self, model: FaceMeshModel, processor: FaceMeshImageProcessor | None = None,
                 batch_size: int = 16, refine: bool = False, channels_last: bool = True):
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model.eval()
        self.processor = processor or FaceMeshImageProcessor(size=model.config.image_size,
                                                             roi_scale=model.config.roi_scale)
        if self.processor.size != model.config.image_size:
            raise ValueError(f"processor size {self.processor.size} != model image_size {model.config.image_size}")
        self.batch_size = int(batch_size)
        self.refine = bool(refine)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model.to(memory_format=self.memory_format)

    @classmethod
    def from_pretrained(cls, folder: str | Path, **kwargs: Any) -> "FaceMeshLandmarker":
        """Load a converted folder (model + ``preprocessor_config.json``)."""
        model = FaceMeshModel.from_pretrained(folder)
        processor = FaceMeshImageProcessor.from_pretrained(folder)
        return cls(model, processor, **kwargs)

    @torch.inference_mode()
    def run_crops(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(N, S, S, 3)`` uint8 crops -> ``(crop landmarks (N, L, 3), presence (N,))`` float32."""
        landmarks, presence = [], []
        parameter = next(self.model.parameters())
        for start in range(0, len(crops), self.batch_size):
            pixels = self.processor(crops[start:start + self.batch_size], return_tensors="pt")["pixel_values"]
            pixels = pixels.to(device=parameter.device, dtype=parameter.dtype, memory_format=self.memory_format)
            out = self.model(pixels)
            landmarks.append(out.landmarks.float().cpu().numpy())
            presence.append(out.presence_scores.float().cpu().numpy())
        if not landmarks:
            return np.zeros((0, self.model.config.num_landmarks, 3), np.float32), np.zeros(0, np.float32)
        return np.concatenate(landmarks), np.concatenate(presence)

    def __call__(self, image: ImageLike, boxes: Any = None, eye_points: Any = None, refine: bool | None = None,
                 rois: Any = None) -> FaceMeshResult:
        """Landmarks of the faces in ``boxes`` (``(N, 4)`` x1, y1, x2, y2) of the RGB ``image``.

        ``eye_points`` ``(N, K, 2)``: the first two points are the image-left and image-right eye
        (YuNet's landmarks as they come); they set the crop's rotation as MediaPipe does. Without
        them the crop is axis-aligned. ``rois`` ``(N, 4)`` replaces boxes and eyes.
        """
        rgb = _to_rgb_uint8(image, 0)
        if rois is None and boxes is not None and np.asarray(boxes).size == 0:
            rois = np.zeros((0, 4))
        crops, rois = self.processor.crop_faces(rgb, boxes, eye_points, rois=rois)
        crop_landmarks, presence = self.run_crops(crops)
        landmarks = self.processor.post_process_landmarks(crop_landmarks, rois)
        if (self.refine if refine is None else refine) and len(rois):
            rois = rois_from_landmarks(landmarks, scale=self.processor.roi_scale)
            crops, rois = self.processor.crop_faces(rgb, rois=rois)
            crop_landmarks, presence = self.run_crops(crops)
            landmarks = self.processor.post_process_landmarks(crop_landmarks, rois)
        return FaceMeshResult(landmarks=landmarks, presence=presence, rois=rois, crop_landmarks=crop_landmarks,
                              threshold=float(self.model.config.presence_threshold))

    def run_faces(self, image: ImageLike, faces: Sequence[Any], refine: bool | None = None) -> FaceMeshResult:
        """:meth:`__call__` for detector records with ``.box`` (x1, y1, x2, y2) and ``.landmarks`` (5 points,
        image-left eye first), e.g. ``hf_fiqa.faces.DetectedFace``; ``result.landmarks[i]`` belongs to ``faces[i]``."""
        if not len(faces):
            return self(image, np.zeros((0, 4)))
        boxes = np.stack([np.asarray(face.box, dtype=np.float64) for face in faces])
        points = np.stack([np.asarray(face.landmarks, dtype=np.float64) for face in faces])
        return self(image, boxes, points, refine=refine)


__all__ = ["FaceMeshLandmarker", "FaceMeshResult"]
