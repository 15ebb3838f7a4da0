"""ONNX export (``hf-fiqa export onnx``) and the onnxruntime scorer, on tiny random models of every family."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from hf_fiqa.commands.export import register  # noqa: E402
from hf_fiqa.export.onnx import OnnxExportError, export_onnx, read_metadata  # noqa: E402
from hf_fiqa.faces.types import AlignedFace  # noqa: E402
from hf_fiqa.scorers import load_scorer, scorer_for_model  # noqa: E402


def _faces(n: int, size: int, seed: int = 5) -> list[AlignedFace]:
    rng = np.random.default_rng(seed)
    # Different sizes than the model input: the processor resizes, as for real crops.
    return [AlignedFace(crop=rng.integers(0, 256, (size + 7 * i, size + 3 * i, 3), dtype=np.uint8)) for i in range(n)]


def _save(model, processor, folder):
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def _maniqa(folder, policy="resize", **config):
    from hf_fiqa.models.maniqa import MANIQAConfig, MANIQAForImageQualityAssessment, MANIQAImageProcessor

    torch.manual_seed(0)
    model = MANIQAForImageQualityAssessment(MANIQAConfig.tiny(**config)).eval()
    return _save(model, MANIQAImageProcessor(crop_size=32, policy=policy), folder)


def _musiq(folder):
    from hf_fiqa.models.musiq import MUSIQConfig, MUSIQForImageQualityAssessment, MUSIQImageProcessor

    torch.manual_seed(0)
    model = MUSIQForImageQualityAssessment(MUSIQConfig.tiny()).eval()
    with torch.no_grad():  # the head starts at zero: give it weights so that scores differ per image
        model.head.weight.normal_(0, 0.5)
    return _save(model, MUSIQImageProcessor(patch_size=16, spatial_grid_size=4, scales=(32,), crop_size=40), folder)


def _iresnet(folder):
    from hf_fiqa.models.iresnet import IResNetConfig, IResNetImageProcessor, IResNetModel

    torch.manual_seed(0)
    model = IResNetModel(IResNetConfig(layers=[1, 1, 1, 1], stem_width=8, widths=[8, 8, 16, 16], image_size=32)).eval()
    return _save(model, IResNetImageProcessor(image_size=32), folder)


def _mobilefacenet(folder):
    from hf_fiqa.models.iresnet import IResNetImageProcessor
    from hf_fiqa.models.mobilefacenet import MobileFaceNetConfig, MobileFaceNetModel

    torch.manual_seed(0)
    model = MobileFaceNetModel(MobileFaceNetConfig(blocks=[1, 1, 0], stem_width=8, stage_width=16, sep_width=32,
                                                   image_size=32)).eval()
    return _save(model, IResNetImageProcessor(image_size=32), folder)


def _dlib(folder):
    from hf_fiqa.models.dlib_resnet import DlibResNetConfig, DlibResNetImageProcessor, DlibResNetModel

    torch.manual_seed(0)
    model = DlibResNetModel(DlibResNetConfig(stem_width=4, stage_widths=(4, 8, 8), stage_blocks=(1, 2, 1),
                                             embedding_size=8, image_size=40)).eval()
    return _save(model, DlibResNetImageProcessor(size=40), folder)


FAMILIES = {"maniqa": _maniqa, "musiq": _musiq, "iresnet": _iresnet, "mobilefacenet": _mobilefacenet, "dlib": _dlib}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_export_matches_torch_within_1e4(family, tmp_path):
    folder = FAMILIES[family](tmp_path / "model")
    out = folder / "onnx" / "model.onnx"
    report = export_onnx(folder, out)
    assert out.is_file() and report.opset == 18
    assert all(diff <= 1e-4 for diff in report.max_abs_diff.values()), report.max_abs_diff
    meta = read_metadata(out)
    assert meta["kind"] == ("quality" if family in ("maniqa", "musiq") else "recognizer")
    assert json.loads(meta["config"])["model_type"]

    # The scorer on the export gives the torch scorer's numbers, at several batch sizes (dynamic batch axis).
    torch_scorer = load_scorer(str(folder), backend="torch")
    faces = _faces(5, torch_scorer.crop_size)
    want = torch_scorer.score(faces)
    for source in (folder, out):  # a folder holding onnx/model.onnx, or the file itself (processor from metadata)
        scorer = load_scorer(str(source), backend="onnxruntime", batch_size=3)
        assert scorer.crop_size == torch_scorer.crop_size
        assert getattr(scorer, "crop_template", None) == getattr(torch_scorer, "crop_template", None)
        got = scorer.score(faces)
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)
        np.testing.assert_allclose(scorer.score(faces[:1]), want[:1], atol=1e-4, rtol=1e-4)
    if family in ("maniqa", "musiq"):
        assert np.ptp(want) > 0  # the comparison is not between constants


def test_auto_backend_runs_a_checked_export_on_cpu(tmp_path):
    """The default backend: onnxruntime on the CPU once the folder holds an export, torch before and on request."""
    from hf_fiqa.scorers import ModelQualityScorer, choose_backend
    from hf_fiqa.scorers.onnx import OnnxQualityScorer

    folder = _maniqa(tmp_path / "m")
    assert choose_backend(str(folder), "cpu") == "torch"
    assert isinstance(load_scorer(str(folder), device="cpu"), ModelQualityScorer)
    export_onnx(folder, folder / "onnx" / "model.onnx")
    assert isinstance(load_scorer(str(folder), device="cpu"), OnnxQualityScorer)
    assert isinstance(load_scorer(str(folder), device="cpu", backend="torch"), ModelQualityScorer)
    assert choose_backend(str(folder / "onnx" / "model.onnx"), "cpu") == "onnxruntime"
    assert choose_backend(str(folder), "cuda") == "torch" and choose_backend("org/some-model", "cpu") == "torch"
    later = (folder / "onnx" / "model.onnx").stat().st_mtime + 10
    os.utime(folder / "config.json", (later, later))  # recalibrated after the export: the export is stale
    assert choose_backend(str(folder), "cpu") == "torch"


def test_maniqa_five_crop_and_calibrated_quality(tmp_path):
    calibration = {"intercept": 5.0, "slope": -10.0, "meaning": "test"}
    folder = _maniqa(tmp_path / "m", policy="five_crop", quality_calibration=calibration)
    out = tmp_path / "m.onnx"
    export_onnx(folder, out)
    faces = _faces(3, 40)
    want = load_scorer(str(folder)).score(faces)
    got = load_scorer(str(out), backend="onnxruntime").score(faces)
    np.testing.assert_allclose(got, want, atol=1e-4)
    assert ((got >= 0) & (got <= 100)).all()


def test_cli_export_and_errors(tmp_path, capsys):
    import argparse

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    folder = _iresnet(tmp_path / "r")
    args = parser.parse_args(["export", "onnx", str(folder), str(tmp_path / "r.onnx")])
    assert args.func(args) == 0
    assert json.loads(capsys.readouterr().out)["outputs"] == ["embeddings", "norms"]
    args = parser.parse_args(["export", "onnx", str(tmp_path / "missing"), str(tmp_path / "x.onnx")])
    assert args.func(args) == 1
    assert "cannot load" in capsys.readouterr().err
    with pytest.raises(ValueError, match="backend"):
        load_scorer(str(folder), backend="tensorrt")
    with pytest.raises(ValueError, match="no ONNX export"):
        load_scorer(str(tmp_path / "r"), backend="onnxruntime")
    with pytest.raises(OnnxExportError):
        export_onnx(torch.nn.Linear(2, 2), tmp_path / "y.onnx")
