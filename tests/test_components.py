"""Quality components (hf_fiqa.components): OFIQ's mappings, behaviour on real LFW faces, and failures as reasons.

Real-photo tests detect faces with YuNet on LFW photos from ``../shared`` and skip without it. Synthetic dense
landmarks (MediaPipe's canonical face placed on the detected 5 points, or rotated by known angles) are used only
where a test is about geometry: the pose fit recovering known angles, lid and lip distances; each such test
says so. Real dense landmarks come from the converted MediaPipe face mesh (:mod:`hf_fiqa.models.face_mesh`) when
``$HF_FIQA_FACE_MESH_MODEL`` names a converted folder or ``$HF_FIQA_FACE_MESH_SRC`` the mediapipe wheel / its
``face_landmark.tflite``; those tests skip otherwise.
"""

from __future__ import annotations

import dataclasses
import math
import os

import cv2
import numpy as np
import pytest

from hf_fiqa.components import (
    COMPONENT_NAMES,
    COMPONENTS,
    REGISTRY,
    ComponentResult,
    FaceInput,
    Sigmoid,
    compute_components,
    compute_components_batch,
)
from hf_fiqa.components.base import round_half_away
from hf_fiqa.components.canonical_face import CANONICAL_FACE, place_canonical_face
from hf_fiqa.components.context import EYE_LID_PAIRS_LEFT, EYE_LID_PAIRS_RIGHT, INNER_LIP_PAIRS, NEEDS_DENSE
from hf_fiqa.components.exposure import cielab_ab
from hf_fiqa.components.pose import (
    FORESHORTENING_FROM,
    combined_yaw,
    pose_from_dense,
    pose_from_five,
    yaw_from_2d_fit,
    yaw_from_foreshortening,
)
from hf_fiqa.faces import YuNetDetector
from hf_fiqa.io import load_image

FRONTAL = "Paul_Bremer/Paul_Bremer_0010.jpg"  # near frontal: 5-point yaw about -4 deg
TURNED = "Nancy_Pelosi/Nancy_Pelosi_0013.jpg"  # yaw about 28 deg (5-point estimate)
PIXEL_COMPONENTS = ("luminance_mean", "luminance_variance", "under_exposure_prevention", "over_exposure_prevention",
                    "dynamic_range", "illumination_uniformity", "natural_colour", "sharpness")
DENSE_ONLY = ("eyes_open", "mouth_closed", "head_pose_pitch")


# ------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def detector(yunet_weights) -> YuNetDetector:
    return YuNetDetector(yunet_weights)


def _lfw(shared, name: str) -> np.ndarray:
    return np.asarray(load_image(shared / "data" / "lfw" / "images" / name))


def _face(detector: YuNetDetector, photo: np.ndarray, dense: bool = False) -> FaceInput:
    faces = detector.detect(photo)
    assert faces, "YuNet found no face"
    best = faces[0]
    mesh = place_canonical_face(best.landmarks) if dense else None
    return FaceInput.from_detection(photo, best, all_faces=faces, dense_landmarks=mesh)


@pytest.fixture(scope="module")
def frontal(shared, detector) -> FaceInput:
    return _face(detector, _lfw(shared, FRONTAL))


def _check_records(results: dict[str, ComponentResult]) -> None:
    """Every record is either a computed value or a reason, never both, never neither."""
    assert set(results) == set(COMPONENT_NAMES)
    for name, r in results.items():
        assert r.name == name
        if r.reason is None:
            assert isinstance(r.component, int) and 0 <= r.component <= 100, r
            assert r.native is not None and math.isfinite(r.native), r
        else:
            assert r.native is None and r.component is None and r.reason.strip(), r


# --------------------------------------------------------------------------------------- mapping (OFIQ)


@pytest.mark.parametrize(
    ("name", "native", "expected"),
    [
        # sigmoid: h (a + s / (1 + exp((x0 - x) / w))), rounded half away from zero, clamped to 0-100
        ("inter_eye_distance", 70.0, 50),  # x0 70, w 20
        ("inter_eye_distance", 90.0, 73),  # 100 / (1 + e^-1) = 73.1
        ("leftward_crop", 0.9, 50),  # x0 0.9, w 0.1
        ("rightward_crop", 1.0, 73),
        ("margin_above", 1.4, 50),  # x0 1.4
        ("margin_below", 1.8, 50),  # x0 1.8
        ("margin_below", 1.6, 12),  # 100 / (1 + e^2) = 11.9
        ("eyes_open", 0.02, 50),  # x0 0.02, w 0.01
        ("eyes_open", 0.03, 73),
        ("mouth_closed", 0.2, 50),  # h 100, a 1, s -1, x0 0.2, w 0.06
        ("mouth_closed", 0.26, 27),  # 100 (1 - 0.731) = 26.9
        ("under_exposure_prevention", 0.0, 100),  # h 120, a 0.832, s -1, x0 0.92, w 0.05: 99.8
        ("under_exposure_prevention", 0.92, 40),  # 120 (0.832 - 0.5) = 39.8
        ("under_exposure_prevention", 1.0, 0),  # 120 (0.832 - 0.83202) < 0.5
        ("natural_colour", 0.0, 100),  # h 200, a 1, s -1, x0 0, w 10
        ("natural_colour", 10.0, 54),  # 200 (1 - 0.731) = 53.8
        ("head_size", 0.45, 100),  # mapped on |x - 0.45|: h 200, a 1, s -1, x0 0, w 0.05
        ("head_size", 0.50, 54),
        ("head_size", 0.40, 54),
        ("luminance_mean", 0.5, 100),  # 100 sig(0.5; 0.2, 0.05) (1 - sig(0.5; 0.8, 0.05)) = 99.5
        ("luminance_mean", 0.2, 50),
        ("luminance_mean", 0.8, 50),
        ("luminance_variance", 1 / 60, 100),  # 100 sin(pi 60v / (60v + 1)) = 100 sin(pi / 2)
        ("luminance_variance", 1 / 180, 71),  # 60v / (60v + 1) = 0.25: 100 sin(pi / 4) = 70.7
        ("luminance_variance", 0.0, 0),
        ("over_exposure_prevention", 0.0, 100),  # round(1 / (x + 0.01)), clamped
        ("over_exposure_prevention", 0.01, 50),
        ("over_exposure_prevention", 0.09, 10),
        ("dynamic_range", 8.0, 100),  # 12.5 x
        ("dynamic_range", 4.0, 50),
        ("illumination_uniformity", 1.0, 100),  # 100 x^0.3
        ("illumination_uniformity", 0.5, 81),  # 81.2
        ("head_pose_yaw", 5.0, 99),  # 100 max(0, cos)^2: 99.2
        ("head_pose_pitch", 20.0, 88),  # 88.3
        ("head_pose_roll", -45.0, 50),
        ("head_pose_yaw", 100.0, 0),
        ("single_face_present", 0.25, 75),  # 100 (1 - f)
        ("sharpness", 0.18, 50),  # hf_fiqa's own mapping: x0 0.18, w 0.02
    ],
)
def test_mapping_matches_hand_computed_values(name, native, expected):
    assert REGISTRY[name].map(np.array([native]))[0] == expected


def test_rounding_is_half_away_from_zero_like_ofiq():
    np.testing.assert_array_equal(round_half_away(np.array([0.5, 1.5, 2.5, -0.5, 49.5])), [1, 2, 3, -1, 50])
    # a mapping landing exactly on .5 rounds up, as OFIQ's std::round does (numpy's round would give 62)
    half = Sigmoid(x0=0.0, w=1.0, h=125.0)
    assert half(0.0) == pytest.approx(62.5) and round_half_away(half(0.0)) == 63


def test_mapping_keeps_nan_and_clamps():
    out = REGISTRY["inter_eye_distance"].map(np.array([np.nan, 1e9, -1e9]))
    assert np.isnan(out[0]) and out[1] == 100 and out[2] == 0


def test_cielab_matches_reference_values():
    # sRGB white -> a* = b* = 0 (D50 white), mid grey too; a skin tone has positive a*, b*.
    a, b = cielab_ab(np.array([[255.0, 255.0, 255.0], [128.0, 128.0, 128.0], [224.0, 172.0, 150.0]]))
    np.testing.assert_allclose(a[:2], 0.0, atol=0.05)
    np.testing.assert_allclose(b[:2], 0.0, atol=0.05)
    assert 10 < a[2] < 20 and 15 < b[2] < 30


def test_registry_is_explicit_and_complete():
    expected = {"head_pose_yaw", "head_pose_pitch", "head_pose_roll", "eyes_open", "mouth_closed",
                "inter_eye_distance", "head_size", "leftward_crop", "rightward_crop", "margin_above",
                "margin_below", "luminance_mean", "luminance_variance", "under_exposure_prevention",
                "over_exposure_prevention", "dynamic_range", "illumination_uniformity", "natural_colour",
                "single_face_present", "sharpness"}
    assert set(COMPONENT_NAMES) == expected and len(COMPONENTS) == len(expected)
    for c in COMPONENTS:
        assert c.unit and c.name == type(c).name
    with pytest.raises(ValueError, match="unknown component"):
        compute_components_batch([], names=["no_such_component"])


# ------------------------------------------------------------------------------------ pose geometry


def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """R = Rz(roll) Ry(yaw) Rx(-pitch) in the canonical frame (x right, y up, z to the camera)."""
    y, p, r = np.radians([yaw, -pitch, roll])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _posed_mesh(yaw: float, pitch: float, roll: float, scale: float = 9.0, centre=(160.0, 150.0)) -> np.ndarray:
    """Synthetic dense landmarks: the canonical face rotated by known angles, projected orthographically into
    photo pixels (y down, z away from the camera)."""
    p = CANONICAL_FACE @ _rotation(yaw, pitch, roll).T * scale
    return np.column_stack([p[:, 0] + centre[0], -p[:, 1] + centre[1], -p[:, 2]])


def _five_of(mesh: np.ndarray) -> np.ndarray:
    return np.stack([mesh[[33, 133], :2].mean(0), mesh[[362, 263], :2].mean(0), mesh[1, :2], mesh[61, :2],
                     mesh[291, :2]])


@pytest.mark.parametrize("angles", [(0, 0, 0), (20, 0, 0), (-35, 10, 5), (10, -15, -20), (0, 25, 0), (50, 0, 8)])
def test_dense_pose_fit_recovers_known_angles(angles):
    """Geometry test on synthetic dense landmarks (the canonical face rotated by known angles)."""
    mesh = _posed_mesh(*angles)
    np.testing.assert_allclose(pose_from_dense(mesh[None])[0], angles, atol=1e-6)
    # the 5-point fallback on the same (noise-free, average) face: yaw within 1.5 deg, roll exact, no pitch
    yaw, pitch, roll = pose_from_five(_five_of(mesh)[None])[0]
    assert abs(yaw - angles[0]) < 1.5 and abs(roll - angles[2]) < 1e-6 and np.isnan(pitch)


@pytest.mark.parametrize("yaw", [-80, -60, -30, 0, 10, 45, 70])
def test_yaw_cues_on_a_turned_canonical_face(yaw):
    """The 2D fit is exact on the canonical face at any yaw (with pitch and roll); the foreshortening cue reads
    cos(yaw) off the eye line (within 0.5 deg: the mouth sits deeper than the eyes, so a turn also moves it
    sideways a little)."""
    mesh = _posed_mesh(yaw, 8, -4)
    assert yaw_from_2d_fit(mesh[None])[0] == pytest.approx(yaw, abs=1e-6)
    assert yaw_from_foreshortening(_five_of(_posed_mesh(yaw, 0, 0))[None])[0] == pytest.approx(abs(yaw), abs=0.5)


def test_combined_yaw_takes_the_strongest_cue():
    cues = np.array([[30.0, -52.0], [np.nan, 12.0], [-20.0, -25.0], [10.0, 5.0]])
    fs = np.array([0.0, 5.0, 60.0, FORESHORTENING_FROM - 1])
    np.testing.assert_allclose(combined_yaw(cues, fs), [-52.0, 12.0, -60.0, 10.0])


def test_a_doubtful_mesh_is_not_used(frontal):
    """A mesh whose presence score is below MediaPipe's 0.5 is a reason for eyes/mouth, and pose falls back to
    the detector's 5 points (with the note saying so)."""
    face = dataclasses.replace(frontal, dense_landmarks=_posed_mesh(0, 0, 0, scale=frontal.box[2] - frontal.box[0],
                                                                       centre=frontal.box.reshape(2, 2).mean(0)),
                               dense_presence=0.2)
    results = compute_components(face)
    assert "presence 0.20" in results["eyes_open"].reason and results["eyes_open"].component is None
    assert results["head_pose_yaw"].ok and "5-point" in results["head_pose_yaw"].note


def test_pose_signs_follow_the_image():
    """Geometry test on synthetic dense landmarks: the documented signs match what the image shows."""
    turned = _posed_mesh(20, 0, 0)
    assert turned[1, 0] > turned[[33, 133, 362, 263], 0].mean()  # yaw > 0: nose to the image right
    tilted = _posed_mesh(0, 0, 10)
    assert tilted[[362, 263], 1].mean() < tilted[[33, 133], 1].mean()  # roll > 0: image-right eye higher
    nod = _posed_mesh(0, 20, 0)
    assert nod[1, 1] - nod[33, 1] < _posed_mesh(0, 0, 0)[1, 1] - _posed_mesh(0, 0, 0)[33, 1]  # pitch > 0: up


# ------------------------------------------------------------------------------------- real LFW faces


def test_every_component_on_a_real_lfw_face(frontal):
    results = compute_components(frontal)
    _check_records(results)
    for name in DENSE_ONLY:
        assert results[name].reason is not None
    assert results["eyes_open"].reason == NEEDS_DENSE
    assert "dense" in results["head_pose_pitch"].reason
    computed = set(COMPONENT_NAMES) - set(DENSE_ONLY)
    assert all(results[n].ok for n in computed), {n: results[n].reason for n in computed if not results[n].ok}
    assert "5-point" in results["head_pose_yaw"].note and "5-point" in results["head_size"].note
    assert abs(results["head_pose_yaw"].native) < 15 and abs(results["head_pose_roll"].native) < 10
    assert results["single_face_present"].native == 0.0 and results["single_face_present"].component == 100
    assert 20 < results["inter_eye_distance"].native < 80  # LFW: 250 px photos
    assert results["leftward_crop"].component == 100 and results["rightward_crop"].component == 100
    assert 0.1 < results["luminance_mean"].native < 0.9
    assert results["sharpness"].component > 50


def test_every_component_with_dense_landmarks(shared, detector):
    """Synthetic dense landmarks (the canonical face placed on the detected 5 points) switch on the dense-only
    components; the canonical face has open eyes and a closed mouth."""
    face = _face(detector, _lfw(shared, FRONTAL), dense=True)
    results = compute_components(face)
    _check_records(results)
    assert all(r.ok for r in results.values()), {n: r.reason for n, r in results.items() if not r.ok}
    assert results["eyes_open"].component > 90 and results["mouth_closed"].component > 85
    assert results["head_pose_yaw"].note.startswith("dense landmarks") and results["head_pose_pitch"].note.startswith("Procrustes")
    # yaw also reads the detector's own nose offset (a real frontal photo), pitch only the canonical mesh
    assert abs(results["head_pose_yaw"].native) < 15 and abs(results["head_pose_pitch"].native) < 1
    assert results["head_size"].note is None and results["luminance_mean"].note is None


def test_lid_and_lip_distances_drive_eyes_open_and_mouth_closed(frontal):
    """Geometry test on synthetic dense landmarks: closing the lids / opening the lips moves the components."""
    base = place_canonical_face(frontal.landmarks)
    closed_eyes = base.copy()
    for upper, lower in EYE_LID_PAIRS_LEFT + EYE_LID_PAIRS_RIGHT:
        closed_eyes[upper] = closed_eyes[lower]
    open_mouth = base.copy()
    t = np.linalg.norm(base[152, :2] - base[[33, 133, 362, 263], :2].mean(0))
    for _, lower in INNER_LIP_PAIRS:
        open_mouth[lower, 1] += 0.3 * t
    names = ["eyes_open", "mouth_closed"]
    ref = compute_components(FaceInput(frontal.photo, frontal.box, frontal.landmarks, dense_landmarks=base), names)
    shut = compute_components(FaceInput(frontal.photo, frontal.box, frontal.landmarks, dense_landmarks=closed_eyes),
                              names)
    gaping = compute_components(FaceInput(frontal.photo, frontal.box, frontal.landmarks, dense_landmarks=open_mouth),
                                names)
    assert shut["eyes_open"].native == pytest.approx(0.0) and shut["eyes_open"].component < 15
    assert ref["eyes_open"].component > 90
    assert gaping["mouth_closed"].native > 0.3 and gaping["mouth_closed"].component < 10
    assert ref["mouth_closed"].component > 85


def test_darkened_copy_lowers_luminance_and_exposure(frontal):
    dark = (frontal.photo.astype(np.float32) * 0.35).astype(np.uint8)
    before = compute_components(frontal)
    after = compute_components(FaceInput(dark, frontal.box, frontal.landmarks, frontal.score, n_faces=1))
    assert after["luminance_mean"].native < before["luminance_mean"].native
    assert after["luminance_mean"].component < before["luminance_mean"].component
    assert after["under_exposure_prevention"].native > before["under_exposure_prevention"].native
    assert after["under_exposure_prevention"].component < before["under_exposure_prevention"].component
    assert after["dynamic_range"].native < before["dynamic_range"].native
    # sharpness is a ratio of derivatives: darkening barely moves it
    assert after["sharpness"].native == pytest.approx(before["sharpness"].native, rel=0.1)


def test_brightened_copy_lowers_over_exposure_component(frontal):
    bright = np.clip(frontal.photo.astype(np.float32) * 2.5, 0, 255).astype(np.uint8)
    before = compute_components(frontal, ["over_exposure_prevention"])["over_exposure_prevention"]
    after = compute_components(FaceInput(bright, frontal.box, frontal.landmarks), ["over_exposure_prevention"])
    assert after["over_exposure_prevention"].native > before.native
    assert after["over_exposure_prevention"].component < before.component


def test_blurred_copy_lowers_sharpness(frontal):
    before = compute_components(frontal, ["sharpness"])["sharpness"]
    blurred = [compute_components(FaceInput(cv2.GaussianBlur(frontal.photo, (0, 0), s), frontal.box, frontal.landmarks),
                                  ["sharpness"])["sharpness"] for s in (1.0, 2.0)]
    assert before.native > blurred[0].native > blurred[1].native
    assert before.component > blurred[0].component > blurred[1].component
    assert blurred[1].component < 20


def test_upscaled_copy_gives_the_same_pixel_components(frontal):
    """The pixel measures run on the aligned face (fixed inter-eye distance): a 4x larger copy of the photo (the
    path that pre-filters a shrunk face) measures the same face; the inter-eye distance grows 4x."""
    names = ["luminance_mean", "dynamic_range", "sharpness", "illumination_uniformity", "inter_eye_distance",
             "head_size"]
    big = cv2.resize(frontal.photo, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)
    a = compute_components(frontal, names)
    b = compute_components(FaceInput(big, frontal.box * 4, (frontal.landmarks + 0.5) * 4 - 0.5), names)
    assert b["luminance_mean"].native == pytest.approx(a["luminance_mean"].native, abs=0.01)
    assert b["dynamic_range"].native == pytest.approx(a["dynamic_range"].native, abs=0.05)
    assert b["sharpness"].native == pytest.approx(a["sharpness"].native, rel=0.05)
    assert b["illumination_uniformity"].native == pytest.approx(a["illumination_uniformity"].native, abs=0.05)
    assert b["inter_eye_distance"].native == pytest.approx(4 * a["inter_eye_distance"].native, rel=1e-3)
    assert b["head_size"].native == pytest.approx(a["head_size"].native, rel=1e-3)


def test_face_against_the_left_edge_lowers_leftward_crop(frontal):
    ied = float(np.linalg.norm(frontal.landmarks[1] - frontal.landmarks[0]))
    cut = int(frontal.landmarks[1, 0] - 0.6 * ied)  # leaves 0.6 IED left of the image-right eye
    shifted = FaceInput(np.ascontiguousarray(frontal.photo[:, cut:]), frontal.box - [cut, 0, cut, 0],
                        frontal.landmarks - [cut, 0], frontal.score, n_faces=1)
    before, after = compute_components(frontal), compute_components(shifted)
    _check_records(after)
    assert after["leftward_crop"].native == pytest.approx(0.6, abs=0.02)
    assert after["leftward_crop"].component < 10 < before["leftward_crop"].component
    assert after["rightward_crop"].native == pytest.approx(before["rightward_crop"].native)
    # half the face region is now outside the photo: pixel statistics say so instead of counting black
    assert "inside the photo" in after["luminance_mean"].reason


def test_mirrored_face_flips_yaw_and_roll(shared, detector):
    photo = _lfw(shared, TURNED)
    h, w = photo.shape[:2]
    # 20 deg counter-clockwise: YuNet's eye points follow only about half of an in-plane rotation (measured:
    # median 5 deg for 10 deg on CelebA and LFW), so a clear tilt is needed for a clearly signed roll.
    tilt = cv2.warpAffine(photo, cv2.getRotationMatrix2D((w / 2, h / 2), 20.0, 1.0), (w, h),
                          borderMode=cv2.BORDER_REFLECT)
    names = ["head_pose_yaw", "head_pose_roll", "inter_eye_distance"]
    face = _face(detector, tilt)
    a = compute_components(face, names)

    # the same landmarks mirrored (x -> W - 1 - x, image-left and image-right points exchanged): exact negation
    pts = face.landmarks.copy()
    pts[:, 0] = w - 1 - pts[:, 0]
    mirrored = FaceInput(np.ascontiguousarray(tilt[:, ::-1]), face.box, pts[[1, 0, 2, 4, 3]])
    m = compute_components(mirrored, names)
    assert m["head_pose_yaw"].native == pytest.approx(-a["head_pose_yaw"].native)
    assert m["head_pose_roll"].native == pytest.approx(-a["head_pose_roll"].native)

    # YuNet run again on the mirrored photo: the signs flip; magnitudes differ by YuNet's own asymmetry
    # (on 200 LFW photos |yaw + mirrored yaw| has median 3.8 deg, p90 8.7; roll median 2.3, p90 5.3)
    b = compute_components(_face(detector, np.ascontiguousarray(tilt[:, ::-1])), names)
    yaw_a, yaw_b = a["head_pose_yaw"].native, b["head_pose_yaw"].native
    roll_a, roll_b = a["head_pose_roll"].native, b["head_pose_roll"].native
    assert yaw_a > 10 and yaw_b < -10 and abs(yaw_a + yaw_b) < 12, (yaw_a, yaw_b)
    assert roll_a > 5 and roll_b < -5 and abs(roll_a + roll_b) < 12, (roll_a, roll_b)
    # the yaw correction makes a turned face's IED larger than its projected eye distance
    assert a["inter_eye_distance"].native > np.linalg.norm(face.landmarks[1] - face.landmarks[0])


def test_mirrored_dense_mesh_flips_yaw_and_roll():
    """Geometry test on synthetic dense landmarks: mirroring the photo of a posed face (x -> W - x, and the mesh
    indices of the two sides exchanged, as a landmark model would report the mirrored face) flips yaw and roll."""
    mesh = _posed_mesh(25, 10, 12)
    mirrored = mesh.copy()
    mirrored[:, 0] = 400 - mirrored[:, 0]
    # pair every canonical point with its mirror image (x -> -x) to re-index the mirrored mesh
    flipped = CANONICAL_FACE * [-1, 1, 1]
    partner = np.argmin(((CANONICAL_FACE[:, None] - flipped[None]) ** 2).sum(-1), axis=1)
    angles = pose_from_dense(mesh[None])[0]
    angles_m = pose_from_dense(mirrored[partner][None])[0]
    np.testing.assert_allclose(angles_m, angles * [-1, 1, -1], atol=1e-3)


# ---------------------------------------------------------------------------- failures become reasons


def test_flat_grey_photo_gives_reasons_not_numbers(frontal):
    grey = np.full_like(frontal.photo, 128)
    results = compute_components(FaceInput(grey, frontal.box, frontal.landmarks, n_faces=1))
    _check_records(results)
    for name in PIXEL_COMPONENTS:
        assert "uniform" in results[name].reason, (name, results[name])
    assert results["inter_eye_distance"].ok  # geometry still stands


def test_greyscale_photo_has_no_natural_colour(frontal):
    grey = np.repeat(cv2.cvtColor(frontal.photo, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    results = compute_components(FaceInput(grey, frontal.box, frontal.landmarks, n_faces=1))
    _check_records(results)
    assert "greyscale" in results["natural_colour"].reason
    assert results["luminance_mean"].ok and results["sharpness"].ok
    # a 2-D grey array is accepted as a photo, too
    flat = compute_components(FaceInput(grey[..., 0], frontal.box, frontal.landmarks), ["natural_colour", "sharpness"])
    assert "greyscale" in flat["natural_colour"].reason and flat["sharpness"].ok


def test_tiny_face_gives_pixel_reasons_and_a_low_ied(frontal):
    scale = 0.12
    small = cv2.resize(frontal.photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    face = FaceInput(small, frontal.box * scale, frontal.landmarks * scale, n_faces=1)
    results = compute_components(face)
    _check_records(results)
    for name in PIXEL_COMPONENTS:
        assert "too small" in results[name].reason
    assert results["inter_eye_distance"].component <= 5


@pytest.mark.parametrize("bad", ["nan", "shape", "coincide"])
def test_broken_landmarks_give_reasons(frontal, bad):
    pts = frontal.landmarks.copy()
    if bad == "nan":
        pts[2, 0] = np.nan
    elif bad == "shape":
        pts = pts[:4]
    else:
        pts[1] = pts[0]
    results = compute_components(FaceInput(frontal.photo, frontal.box, pts, n_faces=1))
    _check_records(results)
    for name in set(COMPONENT_NAMES) - {"single_face_present"}:
        assert results[name].reason is not None, name
    assert results["single_face_present"].ok  # needs no landmarks


def test_missing_or_broken_dense_landmarks_give_reasons(frontal):
    dense = place_canonical_face(frontal.landmarks)
    dense[10, 1] = np.nan
    for mesh, expected in [(None, NEEDS_DENSE), (dense, "NaN"), (dense[:100], "468")]:
        results = compute_components(FaceInput(frontal.photo, frontal.box, frontal.landmarks, dense_landmarks=mesh))
        _check_records(results)
        for name in DENSE_ONLY:
            assert expected in results[name].reason, (name, results[name].reason)
        # the 5 points still carry yaw, roll and the rest, labelled as estimates
        assert results["head_pose_yaw"].ok and "5-point" in results["head_pose_yaw"].note


def test_dense_landmarks_without_depth(frontal):
    """Synthetic dense landmarks with x, y only: lids, lips and face region work; pitch says depth is missing."""
    flat = place_canonical_face(frontal.landmarks)[:, :2]
    results = compute_components(FaceInput(frontal.photo, frontal.box, frontal.landmarks, dense_landmarks=flat))
    _check_records(results)
    assert results["eyes_open"].ok and results["mouth_closed"].ok and results["luminance_mean"].ok
    assert "no depth" in results["head_pose_pitch"].reason
    assert results["head_pose_yaw"].ok and "no depth" in results["head_pose_yaw"].note


def test_unusable_photo_gives_reasons(frontal):
    results = compute_components(FaceInput(frontal.photo.astype(np.float32), frontal.box, frontal.landmarks))
    _check_records(results)
    assert "uint8" in results["luminance_mean"].reason and "uint8" in results["leftward_crop"].reason
    assert results["head_pose_yaw"].ok  # landmarks alone suffice


@pytest.mark.parametrize("field", ["photo_none", "photo_empty", "landmarks_none", "box_none", "dense_garbage"])
def test_garbage_inputs_never_raise(frontal, field):
    kwargs = dict(photo=frontal.photo, box=frontal.box, landmarks=frontal.landmarks, n_faces=1)
    if field == "photo_none":
        kwargs["photo"] = None
    elif field == "photo_empty":
        kwargs["photo"] = np.zeros((0, 0, 3), np.uint8)
    elif field == "landmarks_none":
        kwargs["landmarks"] = None
    elif field == "box_none":
        kwargs.update(box=None, n_faces=2, other_boxes=np.array([[0, 0, 10, 10]]))
    else:
        kwargs["dense_landmarks"] = np.zeros((468,))
    results = compute_components(FaceInput(**kwargs))
    _check_records(results)
    assert any(r.reason for r in results.values())


def test_a_bug_in_one_component_costs_a_reason_not_the_batch(frontal, monkeypatch):
    component = REGISTRY["dynamic_range"]

    def broken(batch):
        raise RuntimeError("boom")

    monkeypatch.setattr(component, "measure", broken)
    results = compute_components_batch([frontal, frontal])
    assert all("RuntimeError: boom" in r["dynamic_range"].reason for r in results)
    assert all(r["luminance_mean"].ok for r in results)


def test_single_face_present_uses_the_other_faces(shared, detector):
    photo = np.asarray(load_image(shared / "data" / "deepface-pairs" / "couple.jpg"))
    faces = detector.detect(photo)
    assert len(faces) >= 2
    res = compute_components(FaceInput.from_detection(photo, faces[0], all_faces=faces), ["single_face_present"])
    r = res["single_face_present"]
    areas = sorted(((f.box[2] - f.box[0]) * (f.box[3] - f.box[1]) for f in faces), reverse=True)
    assert r.native == pytest.approx(areas[1] / areas[0], rel=1e-5) and r.component < 100
    unknown = compute_components(FaceInput(photo, faces[0].box, faces[0].landmarks, n_faces=len(faces)),
                                 ["single_face_present"])["single_face_present"]
    assert "boxes" in unknown.reason
    nothing = compute_components(FaceInput(photo, faces[0].box, faces[0].landmarks), ["single_face_present"])
    assert "not given" in nothing["single_face_present"].reason


# ------------------------------------------------------------------------------------------------ batches


def test_batch_equals_single_faces_and_isolates_a_bad_face(shared, detector, frontal):
    other = _face(detector, _lfw(shared, TURNED))
    bad = FaceInput(frontal.photo, frontal.box, np.full((5, 2), np.nan))
    batch = compute_components_batch([frontal, bad, other])
    assert len(batch) == 3
    for got, face in ((batch[0], frontal), (batch[2], other)):
        single = compute_components(face)
        for name, r in single.items():  # equal up to float summation order of the batched statistics
            assert got[name].component == r.component and got[name].reason == r.reason, name
            assert (got[name].native is None) == (r.native is None), name
            if r.native is not None:
                assert got[name].native == pytest.approx(r.native, rel=1e-9, abs=1e-12), name
    assert all(r.reason is not None for n, r in batch[1].items() if n != "single_face_present")
    assert compute_components_batch([]) == []


def test_names_select_components(frontal):
    out = compute_components(frontal, names=["sharpness", "head_pose_roll"])
    assert list(out) == ["sharpness", "head_pose_roll"]
    assert compute_components(frontal, names="sharpness").keys() == {"sharpness"}


# ------------------------------------------------------------------------- real dense landmarks (optional)


@pytest.fixture(scope="module")
def face_mesh(tmp_path_factory):
    """A :class:`~hf_fiqa.models.face_mesh.FaceMeshLandmarker` from a converted folder or converted here."""
    folder = os.environ.get("HF_FIQA_FACE_MESH_MODEL")
    if not folder and not os.environ.get("HF_FIQA_FACE_MESH_SRC"):
        pytest.skip("no face mesh: set HF_FIQA_FACE_MESH_MODEL (converted folder) or HF_FIQA_FACE_MESH_SRC "
                    "(mediapipe==0.10.14 wheel or face_landmark.tflite)")
    from hf_fiqa.models.face_mesh import FaceMeshLandmarker

    if not folder:
        from hf_fiqa.models.face_mesh.convert_face_mesh import convert_face_mesh_checkpoint

        folder = tmp_path_factory.mktemp("face-mesh")
        convert_face_mesh_checkpoint(None, folder)
    return FaceMeshLandmarker.from_pretrained(folder, batch_size=4)


def test_real_face_mesh_feeds_every_component(shared, detector, face_mesh):
    photos = [_lfw(shared, name) for name in (FRONTAL, TURNED)]
    faces = []
    for photo in photos:
        found = detector.detect(photo)
        mesh = face_mesh(photo, np.stack([f.box for f in found[:1]]), np.stack([f.landmarks for f in found[:1]]))
        assert mesh.present[0]
        faces.append(FaceInput.from_detection(photo, found[0], all_faces=found, dense_landmarks=mesh.landmarks[0]))
    frontal_res, turned_res = compute_components_batch(faces)
    for results in (frontal_res, turned_res):
        _check_records(results)
        assert all(r.ok for r in results.values()), {n: r.reason for n, r in results.items() if not r.ok}
        assert results["head_pose_yaw"].note.startswith("Procrustes")
        assert results["eyes_open"].component > 70 and results["mouth_closed"].component > 50
    # the dense fit and the 5-point estimate agree on how far each face is turned (within 8 deg)
    for face, results in zip(faces, (frontal_res, turned_res)):
        five = pose_from_five(face.landmarks[None])[0, 0]
        assert abs(results["head_pose_yaw"].native - five) < 8, (results["head_pose_yaw"].native, five)
    assert turned_res["head_pose_yaw"].native > 15 and abs(frontal_res["head_pose_yaw"].native) < 10
