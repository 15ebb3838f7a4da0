"""Face detection and alignment: photo -> faces (box, 5 landmarks, score) -> aligned crops.

The whole API in three lines::

    from hf_fiqa.faces import YuNetDetector, align_faces
    detector = YuNetDetector()                       # weights: path, $HF_FIQA_DETECTOR_WEIGHTS or the HF Hub
    faces = detector.detect(photo)                   # list[DetectedFace], best score first, [] when none
    crops = align_faces(photo, faces, sizes=(112, 224))  # {size: [AlignedFace per face]}

or, with decoding, the face-selection rule and failure records in one stage
(:class:`FaceCropper`, what every command uses)::

    photo = FaceCropper()(path, specs=(112, 224), select="largest")

``photo`` is an RGB uint8 array (fastest: decode once with :func:`hf_fiqa.io.load_image`), a PIL
image, a path or bytes. See :mod:`hf_fiqa.faces.detection` and :mod:`hf_fiqa.faces.alignment`
for the options and the reasons behind the defaults. A second detector,
``RetinaFaceDetector`` (:mod:`hf_fiqa.faces.retinaface`, needs torch), is imported lazily.
"""

from .alignment import (
    ARCFACE_TEMPLATE,
    ARCFACE_TEMPLATE_112,
    BORDER_MODES,
    align_face,
    align_faces,
    estimate_similarity,
    resize_crop,
    template_for,
    transform_points,
)
from .cropper import NO_FACE, SELECTIONS, CroppedPhoto, FaceCropper, face_area, select_faces
from .detection import (
    WEIGHTS_ENV,
    DetectorWeightsNotFoundError,
    FaceDetector,
    ScaledFaceDetector,
    YuNetDetector,
    resolve_yunet_weights,
)
from .types import AlignedFace, CropSpec, DetectedFace

__all__ = [
    "ARCFACE_TEMPLATE",
    "ARCFACE_TEMPLATE_112",
    "NO_FACE",
    "SELECTIONS",
    "CropSpec",
    "CroppedPhoto",
    "FaceCropper",
    "face_area",
    "resize_crop",
    "select_faces",
    "BORDER_MODES",
    "WEIGHTS_ENV",
    "AlignedFace",
    "DetectedFace",
    "DetectorWeightsNotFoundError",
    "RetinaFaceDetector",
    "FaceDetector",
    "ScaledFaceDetector",
    "YuNetDetector",
    "align_face",
    "align_faces",
    "estimate_similarity",
    "resolve_yunet_weights",
    "template_for",
    "transform_points",
]


def __getattr__(name: str):
    # RetinaFace pulls in torch (~1 s); only pay for it when asked for.
    if name == "RetinaFaceDetector":
        from .retinaface import RetinaFaceDetector

        return RetinaFaceDetector
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
