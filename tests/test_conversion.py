"""The converter table behind ``hf-fiqa convert``: one shape for every family, cheap to import, one error type."""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

from hf_fiqa.commands import convert as commands
from hf_fiqa.models.conversion import CONVERTERS, CheckpointError, Converter, int_list

CONVERSION_PY = Path(__file__).resolve().parents[1] / "src" / "hf_fiqa" / "models" / "conversion.py"


def test_every_family_has_the_same_converter_shape():
    assert {"maniqa", "musiq", "iresnet"} <= set(CONVERTERS)
    for name, converter in CONVERTERS.items():
        if name == "dlib-resnet" and importlib.util.find_spec(f"hf_fiqa.models.{converter.module}") is None:
            continue  # written by the dlib_resnet family
        function = converter.load()
        assert function.__name__ == converter.function and function.__name__.startswith("convert_")
        params = list(inspect.signature(function).parameters)
        assert params[:2] == ["src", "dst"], (name, params)
        for option in converter.options:
            assert option.dest in params or "config_overrides" in params, (name, option.dest)


def test_table_module_imports_without_torch():
    """``hf-fiqa convert --help`` builds from this table; loading it alone must not pull torch in."""
    script = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('conversion_alone', {str(CONVERSION_PY)!r})\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "sys.modules['conversion_alone'] = module\n"
        "spec.loader.exec_module(module)\n"
        "assert module.CONVERTERS, 'empty table'\n"
        "heavy = [m for m in ('torch', 'transformers', 'numpy') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_sub_commands_come_from_the_table(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="hf-fiqa")
    commands.register(parser.add_subparsers(dest="command", required=True))
    for name in CONVERTERS:
        with pytest.raises(SystemExit):
            parser.parse_args(["convert", name, "--help"])
        out = capsys.readouterr().out
        assert out.startswith(f"usage: hf-fiqa convert {name} ")
        assert "".join(CONVERTERS[name].src_help.split()) in "".join(out.split())  # argparse re-wraps lines
    args = parser.parse_args(["convert", "maniqa", "a.pth", "out", "--feature-layers", "1,2"])
    assert args.feature_layers == [1, 2] and args.backbone_num_heads is None
    args = parser.parse_args(["convert", "musiq", "a.npz", "out", "--no-full-resolution"])
    assert args.include_full_resolution is False and args.scales is None
    # A missing checkpoint is an error line naming the command, exit status 2.
    args = parser.parse_args(["convert", "iresnet", str(tmp_path / "absent.pth"), str(tmp_path / "o")])
    assert args.func(args) == 2
    assert capsys.readouterr().err.startswith("hf-fiqa convert iresnet: ")


def test_optional_source_is_passed_as_none(monkeypatch, capsys):
    seen = {}

    class Model:
        def parameters(self):
            return []

    def fake_convert(src, dst):
        seen.update(src=src, dst=dst)
        return Model()

    converter = Converter(module="x", function="fake_convert", help="fake family", src_help="weights", src_optional=True)
    monkeypatch.setattr(Converter, "load", lambda self: fake_convert)
    parser = argparse.ArgumentParser()
    commands.add_converter(parser.add_subparsers(dest="model"), "fake", converter)
    args = parser.parse_args(["fake", "out"])
    assert args.func(args) == 0 and seen == {"src": None, "dst": "out"}
    assert "converted" in capsys.readouterr().out


def test_checkpoint_error_lists_keys():
    error = CheckpointError.mismatch("bad:", missing=["b", "a"], unexpected=["x"], wrong_shape=[("w", (3,), (4,))],
                                     limit=1)
    assert isinstance(error, ValueError)
    assert (error.missing, error.unexpected, error.wrong_shape) == (["a", "b"], ["x"], [("w", (3,), (4,))])
    text = str(error)
    assert text.startswith("bad:") and "missing keys (2): a, ... and 1 more" in text and "w: checkpoint (3,) vs model (4,)" in text
    assert int_list("6,7, 8") == [6, 7, 8]
