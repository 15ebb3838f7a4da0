"""MediaPipe's 468-point face mesh (``face_landmark.tflite`` from ``mediapipe==0.10.14``, Apache-2.0) as a
transformers model: dense landmarks for pose, eyes and mouth.

The classes declare their Auto class (``_auto_class``), so ``save_pretrained`` writes the
modeling/processing code and an ``auto_map`` next to the weights and
``AutoModel/AutoImageProcessor.from_pretrained(dir, trust_remote_code=True)`` work without hf-fiqa
installed; :func:`hf_fiqa.register` adds ``model_type="face_mesh"`` to the Auto classes. Convert the
released weights with :func:`~hf_fiqa.models.face_mesh.convert_face_mesh.convert_face_mesh_checkpoint`
(``hf-fiqa convert face-mesh [SRC] DST``); run them on photos with :class:`FaceMeshLandmarker`.
"""

from .configuration_face_mesh import FACE_MESH_ROI_SCALE, FACE_MESH_STAGE_BLOCKS, FACE_MESH_STAGE_WIDTHS, FaceMeshConfig
from .image_processing_face_mesh import (
    MESH_EYE_CORNERS,
    FaceMeshImageProcessor,
    crop_rois,
    face_mesh_rois,
    project_landmarks,
    roi_to_photo,
    rois_from_landmarks,
)
from .modeling_face_mesh import FaceMeshBlock, FaceMeshModel, FaceMeshOutput, FaceMeshPreTrainedModel
from .processing_face_mesh import FaceMeshLandmarker, FaceMeshResult

# What :func:`hf_fiqa.models.register_models` adds to AutoConfig / AutoModel / AutoImageProcessor.
AUTO_CLASSES = (FaceMeshConfig, FaceMeshModel, FaceMeshImageProcessor)

__all__ = [
    "AUTO_CLASSES",
    "FACE_MESH_ROI_SCALE",
    "FACE_MESH_STAGE_BLOCKS",
    "FACE_MESH_STAGE_WIDTHS",
    "MESH_EYE_CORNERS",
    "FaceMeshBlock",
    "FaceMeshConfig",
    "FaceMeshImageProcessor",
    "FaceMeshLandmarker",
    "FaceMeshModel",
    "FaceMeshOutput",
    "FaceMeshPreTrainedModel",
    "FaceMeshResult",
    "crop_rois",
    "face_mesh_rois",
    "project_landmarks",
    "roi_to_photo",
    "rois_from_landmarks",
]
