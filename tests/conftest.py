from __future__ import annotations

import os

import pytest

# Tests must never reach the network; Hub code paths are exercised against local caches.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Under pytest-xdist (`-n 2`, what the README's test command uses) each worker gets one core's worth of threads, so
# two workers share 2 cores without oversubscribing them.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(name, "1")

from hf_fiqa.paths import shared_dir  # noqa: E402


@pytest.fixture(scope="session")
def shared():
    """``../shared`` with real photos and detector weights; tests using it skip without it."""
    root = shared_dir()
    if not (root / "data").is_dir():
        pytest.skip(f"shared data not found at {root} (set HF_FIQA_SHARED)")
    return root


@pytest.fixture(scope="session")
def yunet_weights(shared):
    path = shared / "weights" / "yunet" / "face_detection_yunet.onnx"
    if not path.is_file():
        pytest.skip(f"YuNet weights not found at {path}")
    return path


@pytest.fixture(scope="session")
def tiny_maniqa_dir(tmp_path_factory):
    """A saved tiny random MANIQA (model + image processor) folder, as ``from_pretrained`` expects."""
    import torch

    from hf_fiqa.hub import package_quality_model
    from hf_fiqa.models.maniqa import MANIQAConfig, MANIQAForImageQualityAssessment, MANIQAImageProcessor

    torch.manual_seed(0)
    model = MANIQAForImageQualityAssessment(MANIQAConfig.tiny()).eval()
    folder = tmp_path_factory.mktemp("tiny-maniqa")
    model.save_pretrained(folder)
    MANIQAImageProcessor(crop_size=model.config.image_size, policy="resize").save_pretrained(folder)
    package_quality_model(folder)  # what the export steps do: pipeline code beside the weights, a card
    return folder
