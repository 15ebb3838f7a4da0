"""align_dataset on real photos (celeba-wild-ids), a face-less image and an unreadable one."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("hf_fiqa.faces.detection")


def test_align_dataset_on_real_photos(shared, yunet_weights, tmp_path):
    import datasets

    from hf_fiqa.data.aligned import align_dataset
    from hf_fiqa.data.identity_folder import load_identity_folder

    photos = load_identity_folder(shared / "data" / "celeba-wild-ids").select(range(20))
    # A smooth gradient (no face) and a file that is not an image at all.
    y, x = np.mgrid[0:200, 0:300]
    gradient = np.stack([x % 256, y % 256, (x + y) % 256], axis=-1).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(gradient).save(buf, format="PNG")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    extra = datasets.Dataset.from_dict(
        {"image": [{"bytes": buf.getvalue(), "path": None}, {"bytes": None, "path": str(broken)}],
         "path": ["gradient.png", "broken.jpg"], "identity": [0, 0]},
        features=photos.features,
    )
    ds = datasets.concatenate_datasets([photos, extra])
    out = align_dataset(ds, sizes=(112, 224), detector_weights=yunet_weights)
    assert len(out) == 22
    found = out["face_found"]
    assert all(found[:20]), [e for e in out["face_error"][:20] if e]
    assert found[20:] == [False, False]
    assert out["face_error"][20] == "no face detected"
    assert "unreadable image" in out["face_error"][21] and "broken.jpg" in out["face_error"][21]
    row = out[0]
    assert row["aligned_112"].size == (112, 112) and row["aligned_224"].size == (224, 224)
    assert 0.6 <= row["face_score"] <= 1.0
    x1, y1, x2, y2 = row["face_box"]
    assert x2 > x1 and y2 > y1 and len(row["face_landmarks"]) == 5
    # (Row 21's own image column would fail to decode: read only the derived columns.)
    assert out.select_columns(["aligned_112", "face_score"])[21] == {"aligned_112": None, "face_score": None}
    assert out.features["image"] == photos.features["image"]  # the image column is decoded again
    largest = align_dataset(ds.select(range(3)), sizes=(112,), detector_weights=yunet_weights, select="largest")
    assert all(largest["face_found"])
