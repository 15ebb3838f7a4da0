"""The face-cropping stage every command shares: selection rules, templates, failure records."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from hf_fiqa.faces import (
    NO_FACE,
    CropSpec,
    DetectedFace,
    FaceCropper,
    estimate_similarity,
    resize_crop,
    select_faces,
    template_for,
    transform_points,
)


def _face(x1: float, y1: float, side: float, score: float) -> DetectedFace:
    """A face whose landmarks sit on the ArcFace template scaled into its box."""
    landmarks = template_for(112) / 112.0 * side + np.array([x1, y1])
    return DetectedFace(box=np.array([x1, y1, x1 + side, y1 + side], dtype=np.float32),
                        landmarks=landmarks.astype(np.float32), score=score)


class FixedDetector:
    """Returns the same faces for every photo, best score first, as real detectors do."""

    def __init__(self, faces: list[DetectedFace]):
        self.faces = sorted(faces, key=lambda f: -f.score)
        self.calls = 0

    def detect(self, image) -> list[DetectedFace]:
        self.calls += 1
        return list(self.faces)


@pytest.fixture
def photo() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)


def test_selection_rules():
    small, big, best = _face(0, 0, 20, 0.5), _face(50, 50, 90, 0.7), _face(150, 10, 60, 0.99)
    faces = [best, big, small]
    assert select_faces(faces, "all")[0] == faces
    assert select_faces(faces, "largest")[0] == [big]
    assert select_faces(faces, "best")[0] == [best]
    kept, reason = select_faces(faces, "all", min_face_size=100)
    assert kept == [] and "at least 100 px (3 smaller found)" in reason
    assert select_faces([], "largest") == ([], NO_FACE)
    with pytest.raises(ValueError, match="select must be one of"):
        select_faces(faces, "biggest")


def test_cropper_aligns_each_kept_face_at_each_spec(photo):
    faces = [_face(20, 30, 80, 0.9), _face(150, 40, 120, 0.8)]
    cropper = FaceCropper(FixedDetector(faces))
    dlib_like = CropSpec(150, tuple(map(tuple, template_for(112) / 112.0 * 0.8 + 0.1)))
    out = cropper(photo, specs=(112, dlib_like), select="all")
    assert out.ok and out.error is None and out.reason is None and out.n_detected == 2
    assert [c.crop.shape for c in out.crops[112]] == [(112, 112, 3)] * 2
    assert [c.crop.shape for c in out.crops[dlib_like]] == [(150, 150, 3)] * 2
    # Each crop is the face warped onto its own template.
    for face, aligned in zip(out.faces, out.crops[dlib_like]):
        assert aligned.face is face
        matrix = estimate_similarity(face.landmarks, 150, dlib_like.template)
        np.testing.assert_allclose(transform_points(matrix, face.landmarks), template_for(150, dlib_like.template),
                                   atol=1e-3)
    largest = cropper(photo, specs=(112,), select="largest")
    assert largest.faces == [faces[1]] and len(largest.crops[112]) == 1


def test_cropper_turns_failures_into_records(tmp_path, photo):
    cropper = FaceCropper(FixedDetector([]))
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    unreadable = cropper(str(bad))
    assert unreadable.error and str(bad) in unreadable.error and not unreadable.faces
    faceless = cropper(Image.fromarray(photo))
    assert faceless.error is None and faceless.reason == NO_FACE and faceless.n_detected == 0


def test_cropper_records_a_degenerate_detection_instead_of_raising(photo):
    collapsed = DetectedFace(box=np.array([0, 0, 10, 10], dtype=np.float32), landmarks=np.ones((5, 2), np.float32),
                             score=0.9)
    out = FaceCropper(FixedDetector([collapsed]))(photo, specs=(112,))
    assert not out.faces and "same point" in out.error and "ndarray" in out.error


def test_crop_spec_is_a_dictionary_key_and_validates():
    a = CropSpec(150, [(0.1, 0.2)] * 5)
    assert a == CropSpec(150, tuple([(0.1, 0.2)] * 5)) and len({a, CropSpec(150, [(0.1, 0.2)] * 5)}) == 1
    with pytest.raises(ValueError, match="5"):
        CropSpec(150, [(0.0, 0.0)] * 4)
    with pytest.raises(ValueError, match="integer >= 8"):
        CropSpec(4)


def test_resize_crop_keeps_the_right_size_and_passes_through_exact_sizes():
    crop = np.random.default_rng(1).integers(0, 256, (200, 200, 3), dtype=np.uint8)
    assert resize_crop(crop, 200) is crop
    assert resize_crop(crop, 112).shape == (112, 112, 3) and resize_crop(crop[:50, :50], 112).shape == (112, 112, 3)
