"""Convert released iResNet checkpoints (insightface ``arcface_torch``, MagFace) to this package's model.

Two layouts are understood:

``arcface_torch``
    insightface's ``backbone.pth`` / ``model.pt``: a plain state dict with keys ``conv1.weight``,
    ``bn1.*``, ``prelu.weight``, ``layer1.0.bn1.*`` ... ``bn2.*``, ``fc.*``, ``features.*``
    (sometimes prefixed ``module.``, or nested under ``state_dict_backbone``). Input convention:
    RGB, ``(x / 255 - 0.5) / 0.5``; BatchNorm eps 1e-5.
``magface``
    IrvingMeng/MagFace training checkpoints: ``{"epoch", "arch", "state_dict", "optimizer"}``
    whose ``state_dict`` keys are ``features.module.<backbone key>`` (DDP release) or
    ``module.features.<backbone key>`` (DataParallel release), plus the ``fc``/``MagLinear``
    class-centre head, which is dropped. Input convention of MagFace's ``gen_feat.py``: OpenCV
    BGR, ``x / 255`` (mean 0, std 1); BatchNorm eps 2e-5.

The converter infers depth, widths and embedding size from tensor shapes, writes the layout's
input convention to the image processor, and reports every missing, unexpected or wrong-shape key
in one :class:`~hf_fiqa.models.conversion.CheckpointError` instead of loading partially.
Checkpoints are read with ``torch.load(weights_only=True)`` (or safetensors): nothing is unpickled.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..conversion import CheckpointError, compare_state_dicts, load_torch_checkpoint
from .configuration_iresnet import IRESNET_DEPTHS, IResNetConfig
from .image_processing_iresnet import IResNetImageProcessor
from .modeling_iresnet import IResNetModel

LAYOUTS = ("auto", "arcface_torch", "magface")

# The BatchNorm epsilon each release was trained with (a config value) ...
LAYOUT_BN_EPS: dict[str, float] = {"arcface_torch": 1e-5, "magface": 2e-5}
# ... and its input convention (written to the image processor).
LAYOUT_PIXELS: dict[str, dict[str, Any]] = {
    "arcface_torch": {"image_mean": [0.5] * 3, "image_std": [0.5] * 3, "channel_order": "RGB"},
    "magface": {"image_mean": [0.0] * 3, "image_std": [1.0] * 3, "channel_order": "BGR"},
}

_WRAPPER_KEYS = ("state_dict", "state_dict_backbone", "model_state_dict", "model", "backbone")
_MAGFACE_PREFIXES = ("features.module.", "module.features.")
_BLOCK_KEY = re.compile(r"^layer([1-4])\.(\d+)\.")


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a checkpoint file as a flat ``{key: tensor}`` dict, unwrapping training wrappers.

    ``.safetensors`` files are read with safetensors; anything else with
    ``torch.load(weights_only=True)``, so a malicious pickle cannot execute code. A missing file
    raises ``FileNotFoundError``; an unreadable one :class:`CheckpointError`.
    """
    return unwrap_state_dict(load_torch_checkpoint(path), str(path))


def unwrap_state_dict(obj: Any, source: str = "<state dict>") -> dict[str, torch.Tensor]:
    """Descend through ``{"state_dict": ...}``-style wrappers to the first mapping of tensors."""
    for _ in range(4):
        if not isinstance(obj, Mapping):
            break
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return {str(k): v for k, v in obj.items()}
        inner = next((obj[k] for k in _WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
    kind = type(obj).__name__
    keys = list(obj.keys())[:10] if isinstance(obj, Mapping) else []
    raise CheckpointError(
        f"{source}: expected a state dict of tensors (optionally under one of {_WRAPPER_KEYS}), "
        f"found {kind}" + (f" with keys {keys}" if keys else "")
    )


def detect_layout(state_dict: Mapping[str, torch.Tensor]) -> str:
    """``magface`` when the stem sits under MagFace's ``features.module.``/``module.features.`` prefix.

    Looking for the stem (not just the prefix) matters: a DDP-saved arcface_torch backbone has
    ``module.features.*`` keys too, for its final BatchNorm1d called ``features``.
    """
    magface = any(prefix + "conv1.weight" in state_dict for prefix in _MAGFACE_PREFIXES)
    return "magface" if magface else "arcface_torch"


def extract_backbone(
    state_dict: Mapping[str, torch.Tensor], layout: str, source: str = "<state dict>"
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Return ``(backbone state dict in arcface_torch key names, dropped head keys)``."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if layout == "auto":
        layout = detect_layout(state_dict)
    if layout == "magface":
        backbone: dict[str, torch.Tensor] = {}
        dropped: list[str] = []
        for key, value in state_dict.items():
            prefix = next((p for p in _MAGFACE_PREFIXES if key.startswith(p)), None)
            if prefix is None:
                dropped.append(key)  # the MagLinear / fc class-centre head and other training state
            else:
                backbone[key[len(prefix) :]] = value
        if "conv1.weight" not in backbone:
            raise CheckpointError(
                f"{source}: no stem key {' or '.join(p + 'conv1.weight' for p in _MAGFACE_PREFIXES)}; this is not a MagFace "
                f"checkpoint (first keys: {list(state_dict)[:5]}); try --layout arcface_torch"
            )
        return backbone, sorted(dropped)
    # arcface_torch: strip a wrapper prefix only when every key carries it (DDP's "module.").
    backbone = dict(state_dict)
    for prefix in ("module.", "backbone."):
        if backbone and all(k.startswith(prefix) for k in backbone):
            backbone = {k[len(prefix) :]: v for k, v in backbone.items()}
    return backbone, []


def infer_config(
    backbone: Mapping[str, torch.Tensor], layout: str, depth: int | None = None, source: str = "<state dict>"
) -> IResNetConfig:
    """Read depth, widths, embedding size and input size off the tensor shapes."""
    required = ["conv1.weight", "fc.weight"] + [f"layer{i}.0.conv1.weight" for i in range(1, 5)]
    missing = [k for k in required if k not in backbone]
    if missing:
        raise _mismatch(source, missing=missing, note="cannot infer the architecture")
    blocks = [0, 0, 0, 0]
    for key in backbone:
        match = _BLOCK_KEY.match(key)
        if match:
            stage, index = int(match.group(1)) - 1, int(match.group(2))
            blocks[stage] = max(blocks[stage], index + 1)
    widths = [int(backbone[f"layer{i}.0.conv1.weight"].shape[0]) for i in range(1, 5)]
    fc = backbone["fc.weight"]
    cells = fc.shape[1] / widths[3]
    side = math.isqrt(int(cells)) if cells == int(cells) else 0
    if side * side != cells or side == 0:
        raise _mismatch(
            source,
            wrong_shape=[("fc.weight", tuple(fc.shape), (fc.shape[0], widths[3] * 49))],
            note=f"fc input {fc.shape[1]} is not {widths[3]} channels times a square feature map",
        )
    named_depth = next((d for d, layers in IRESNET_DEPTHS.items() if list(layers) == blocks), None)
    if depth is not None:
        if depth not in IRESNET_DEPTHS:
            raise ValueError(f"depth must be one of {sorted(IRESNET_DEPTHS)}, got {depth}")
        if list(IRESNET_DEPTHS[depth]) != blocks:
            raise CheckpointError(
                f"{source}: --depth {depth} expects blocks per stage {list(IRESNET_DEPTHS[depth])} but the "
                f"checkpoint has {blocks}" + (f" (iResNet-{named_depth})" if named_depth else "")
            )
    return IResNetConfig(
        depth=named_depth,
        layers=blocks,
        stem_width=int(backbone["conv1.weight"].shape[0]),
        widths=widths,
        embedding_size=int(fc.shape[0]),
        image_size=16 * side,
        num_channels=int(backbone["conv1.weight"].shape[1]),
        bn_eps=LAYOUT_BN_EPS[layout],
    )


def _mismatch(source: str, missing=None, unexpected=None, wrong_shape=None, note: str = "") -> CheckpointError:
    title = f"checkpoint {source} does not match the iResNet model" + (f" ({note})" if note else "") + ":"
    return CheckpointError.mismatch(title, missing, unexpected, wrong_shape, limit=25)


def load_backbone_strict(model: IResNetModel, backbone: Mapping[str, torch.Tensor], source: str) -> None:
    """Copy ``backbone`` into ``model``; any missing/unexpected/wrong-shape key fails with the full list.

    ``num_batches_tracked`` counters are the only keys allowed to be absent (old PyTorch
    versions did not save them and they do not affect inference).
    """
    missing, unexpected, wrong = compare_state_dicts(
        model.state_dict(), backbone, optional=lambda key: key.endswith("num_batches_tracked"))
    if missing or unexpected or wrong:
        raise _mismatch(source, missing, unexpected, wrong)
    model.load_state_dict({k: v for k, v in backbone.items()}, strict=False)


@dataclass
class Conversion:
    """A converted model plus what the conversion decided, for reporting."""

    model: IResNetModel
    layout: str  # the resolved layout ("arcface_torch" or "magface")
    processor: IResNetImageProcessor  # the layout's input convention at the model's input size
    dropped_keys: list[str] = field(default_factory=list)  # head/training keys left out


def convert_state_dict(
    state_dict: Mapping[str, Any], layout: str = "auto", depth: int | None = None, source: str = "<state dict>"
) -> Conversion:
    """Build an :class:`IResNetModel` (eval mode) and its image processor from an in-memory checkpoint."""
    flat = unwrap_state_dict(state_dict, source)
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    resolved = detect_layout(flat) if layout == "auto" else layout
    backbone, dropped = extract_backbone(flat, resolved, source)
    config = infer_config(backbone, resolved, depth, source)
    model = IResNetModel(config)
    load_backbone_strict(model, {k: v.float() if v.is_floating_point() else v for k, v in backbone.items()}, source)
    model.eval()
    with torch.no_grad():
        probe = model(torch.zeros(1, config.num_channels, config.image_size, config.image_size)).embeddings
    if not torch.isfinite(probe).all():
        raise CheckpointError(f"{source}: converted model produces non-finite embeddings; the checkpoint is corrupt")
    processor = IResNetImageProcessor(image_size=config.image_size, **LAYOUT_PIXELS[resolved])
    return Conversion(model=model, layout=resolved, processor=processor, dropped_keys=dropped)


def convert_iresnet_checkpoint(
    src: str | Path, dst: str | Path, layout: str = "auto", depth: int | None = None
) -> IResNetModel:
    """Read ``src`` (``.pth``/``.pt``/``.safetensors``), convert, and save model + image processor to ``dst``.

    ``dst`` then holds ``config.json``, ``model.safetensors``, ``preprocessor_config.json`` (the
    layout's pixel convention) and the modeling/processing code, loadable with
    ``AutoModel``/``AutoImageProcessor.from_pretrained(dst, trust_remote_code=True)`` even without hf-fiqa.
    Raises :class:`~hf_fiqa.models.conversion.CheckpointError` (``FileNotFoundError`` for a missing ``src``).
    """
    conversion = convert_state_dict(read_checkpoint(src), layout=layout, depth=depth, source=str(src))
    Path(dst).mkdir(parents=True, exist_ok=True)
    conversion.model.save_pretrained(str(dst))
    conversion.processor.save_pretrained(str(dst))
    return conversion.model


def summarize(model: IResNetModel) -> str:
    """One line about a converted model, for ``hf-fiqa convert iresnet``."""
    cfg = model.config
    name = f"iResNet-{cfg.depth}" if cfg.depth else f"iResNet with layers {cfg.layers}"
    return (f"{name}, widths {cfg.widths}, {cfg.embedding_size}-d embeddings, "
            f"{cfg.image_size}x{cfg.image_size} input, BatchNorm eps {cfg.bn_eps:g}")
