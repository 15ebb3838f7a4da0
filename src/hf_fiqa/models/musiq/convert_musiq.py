"""Convert an official MUSIQ checkpoint (google-research/musiq, flax ``.npz``) into a saved hf-fiqa model folder.

The released files hold the flax parameter tree flattened with ``/`` under ``opt/target/`` (optimizer state
beside it is ignored); they are read with ``np.load(..., allow_pickle=False)``, so nothing is unpickled. The key
layout is restated in the tests' ``reference_musiq``; the auto-generated names inside an encoder block
(``LayerNorm_0``, ``MultiHeadDotProductAttention_1``, ``LayerNorm_2``, ``MlpBlock_3``) follow flax.nn's
class-name + counter scheme, as in Google's ViT checkpoints.

The geometry (widths, depths, heads, hash grid, number of scales, score vs 10-bin head, patch size) is read off
the shapes. Any key that does not map, a missing key, or a shape that differs aborts with one message listing all
of them. Weight layouts: conv kernels HWIO -> OIHW; Dense kernels (in, out) -> (out, in); attention kernels
(D, heads, head_dim) / (heads, head_dim, D) -> (D, D); GroupNorm scales (1, 1, 1, C) -> (C,); the patch
embedding keeps its HWC input order (the PyTorch stem flattens HWC too).
"""

from __future__ import annotations

import math
import re
import zipfile
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import numpy as np
import torch

from ..conversion import CheckpointError
from .configuration_musiq import MUSIQConfig
from .image_processing_musiq import MUSIQImageProcessor
from .modeling_musiq import MUSIQForImageQualityAssessment

PREFIX = "opt/target/"
# Scales of the released multi-scale (3) and single-scale (1) checkpoints, in processor terms.
DEFAULT_SCALES = {3: (224, 384), 1: ()}


def load_official_params(path: str | Path) -> dict[str, np.ndarray]:
    """The model parameters of an official ``.npz`` (``opt/target/`` stripped), without unpickling anything."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            if not hasattr(data, "files"):
                raise CheckpointError(f"{path}: a single .npy array, not an .npz parameter archive")
            arrays = {name: data[name] for name in data.files}
    except CheckpointError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"{path}: cannot be read as a numpy .npz archive of plain arrays "
                              f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    if any(name.startswith(PREFIX) for name in arrays):
        arrays = {name[len(PREFIX):]: value for name, value in arrays.items() if name.startswith(PREFIX)}
    if not arrays:
        raise CheckpointError(f"{path}: the archive holds no parameters")
    return arrays


def _count(params: Mapping[str, Any], pattern: str) -> list[int]:
    return sorted({int(m.group(1)) for key in params if (m := re.match(pattern, key))})


def config_from_params(params: Mapping[str, np.ndarray], **overrides: Any) -> MUSIQConfig:
    """A :class:`MUSIQConfig` whose geometry matches the parameter shapes (``overrides`` win)."""
    needed = ["conv_root/kernel", "embedding/kernel", "Transformer/posembed_input/pos_embedding", "head/kernel",
              "Transformer/encoderblock_0/MultiHeadDotProductAttention_1/query/kernel",
              "Transformer/encoderblock_0/MlpBlock_3/Dense_0/kernel"]
    missing = [key for key in needed if key not in params]
    if missing:
        raise CheckpointError(f"not a MUSIQ checkpoint in the official layout: missing {missing}")
    if any(key.startswith("pre_logits/") for key in params):
        raise CheckpointError("checkpoint has a pre_logits layer (representation_size); not supported")
    stages = _count(params, r"block(\d+)/unit\d+/")
    if stages != list(range(1, len(stages) + 1)):
        raise CheckpointError(f"stem stages must be block1..blockN, found {stages}")
    stem_blocks = [len(_count(params, rf"block{i}/unit(\d+)/")) for i in stages]
    stem_features, hidden = params["embedding/kernel"].shape
    scale_table = params.get("Transformer/scaleembed_input/scale_embedding")
    values: dict[str, Any] = dict(
        stem_width=int(params["conv_root/kernel"].shape[-1]),
        stem_blocks=stem_blocks,
        hidden_size=int(hidden),
        num_hidden_layers=len(_count(params, r"Transformer/encoderblock_(\d+)/")),
        num_attention_heads=int(params["Transformer/encoderblock_0/MultiHeadDotProductAttention_1/query/kernel"].shape[1]),
        intermediate_size=int(params["Transformer/encoderblock_0/MlpBlock_3/Dense_0/kernel"].shape[1]),
        spatial_grid_size=math.isqrt(int(params["Transformer/posembed_input/pos_embedding"].shape[1])),
        use_scale_embedding=scale_table is not None,
        num_scales=int(scale_table.shape[1]) if scale_table is not None else 1,
    )
    classes = int(params["head/kernel"].shape[1])
    values.update(dict(head="distribution", num_bins=classes) if classes > 1 else dict(head="score"))
    # Patch size from the embedding input: (P / stride)^2 * channels.
    probe = MUSIQConfig(**{**values, "patch_size": 4 * 2 ** max(len(stem_blocks) - 1, 0)})
    side = math.isqrt(stem_features // probe.stem_channels)
    if side * side * probe.stem_channels != stem_features:
        raise CheckpointError(f"embedding/kernel input {stem_features} is not (side^2 x {probe.stem_channels} stem channels)")
    values["patch_size"] = side * probe.stem_stride
    values.update(overrides)
    return MUSIQConfig(**values)


def _conv(a: np.ndarray) -> np.ndarray:
    return a.transpose(3, 2, 0, 1)


def _dense(a: np.ndarray) -> np.ndarray:
    return a.T


def _heads_in(a: np.ndarray) -> np.ndarray:  # (D, heads, head_dim) -> (out, in)
    return a.reshape(a.shape[0], -1).T


def _heads_out(a: np.ndarray) -> np.ndarray:  # (heads, head_dim, D) -> (out, in)
    return a.reshape(-1, a.shape[-1]).T


def _flat(a: np.ndarray) -> np.ndarray:
    return a.reshape(-1)


def _table(a: np.ndarray) -> np.ndarray:  # (1, N, D) -> (N, D)
    return a.reshape(-1, a.shape[-1])


def _cls(a: np.ndarray) -> np.ndarray:
    return a.reshape(1, 1, -1)


def key_map(config: MUSIQConfig) -> dict[str, tuple[str, Callable[[np.ndarray], np.ndarray]]]:
    """hf-fiqa state-dict key -> (official key, layout transform) for every parameter of this geometry."""
    table: dict[str, tuple[str, Callable[[np.ndarray], np.ndarray]]] = {
        "stem.conv_root.weight": ("conv_root/kernel", _conv),
        "stem.gn_root.weight": ("gn_root/scale", _flat),
        "stem.gn_root.bias": ("gn_root/bias", _flat),
        "embedding.weight": ("embedding/kernel", _dense),
        "embedding.bias": ("embedding/bias", _flat),
        "encoder.spatial_embedding": ("Transformer/posembed_input/pos_embedding", _table),
        "encoder.cls_token": ("Transformer/cls", _cls),
        "encoder.norm.weight": ("Transformer/encoder_norm/scale", _flat),
        "encoder.norm.bias": ("Transformer/encoder_norm/bias", _flat),
        "head.weight": ("head/kernel", _dense),
        "head.bias": ("head/bias", _flat),
    }
    if config.use_scale_embedding:
        table["encoder.scale_embedding"] = ("Transformer/scaleembed_input/scale_embedding", _table)
    in_channels = config.stem_width
    for i, units in enumerate(config.stem_blocks):
        for j in range(units):
            src, dst = f"block{i + 1}/unit{j + 1}", f"stem.stages.{i}.{j}"
            names = ["1", "2", "3"]
            out_channels = config.stem_width * 2 ** i * 4
            if in_channels != out_channels or (i > 0 and j == 0):
                names.append("_proj")
            for n in names:
                table[f"{dst}.conv{n}.weight"] = (f"{src}/conv{n}/kernel", _conv)
                table[f"{dst}.gn{n}.weight"] = (f"{src}/gn{n}/scale", _flat)
                table[f"{dst}.gn{n}.bias"] = (f"{src}/gn{n}/bias", _flat)
            in_channels = out_channels
    for k in range(config.num_hidden_layers):
        src, dst = f"Transformer/encoderblock_{k}", f"encoder.layers.{k}"
        attn = f"{src}/MultiHeadDotProductAttention_1"
        for ours, theirs in (("norm1", "LayerNorm_0"), ("norm2", "LayerNorm_2")):
            table[f"{dst}.{ours}.weight"] = (f"{src}/{theirs}/scale", _flat)
            table[f"{dst}.{ours}.bias"] = (f"{src}/{theirs}/bias", _flat)
        for proj in ("query", "key", "value"):
            table[f"{dst}.attention.{proj}.weight"] = (f"{attn}/{proj}/kernel", _heads_in)
            table[f"{dst}.attention.{proj}.bias"] = (f"{attn}/{proj}/bias", _flat)
        table[f"{dst}.attention.out.weight"] = (f"{attn}/out/kernel", _heads_out)
        table[f"{dst}.attention.out.bias"] = (f"{attn}/out/bias", _flat)
        for ours, theirs in (("fc1", "Dense_0"), ("fc2", "Dense_1")):
            table[f"{dst}.mlp.{ours}.weight"] = (f"{src}/MlpBlock_3/{theirs}/kernel", _dense)
            table[f"{dst}.mlp.{ours}.bias"] = (f"{src}/MlpBlock_3/{theirs}/bias", _flat)
    return table


def official_to_hf(params: Mapping[str, np.ndarray], model: MUSIQForImageQualityAssessment) -> dict[str, torch.Tensor]:
    """Official parameters -> this model's state dict; every unmapped, missing or misshapen key is reported."""
    table = key_map(model.config)
    expected = model.state_dict()
    state: dict[str, torch.Tensor] = {}
    problems: list[str] = []
    missing_ours = sorted(set(expected) - set(table))
    if missing_ours:  # a bug in key_map, not in the checkpoint
        problems.append(f"no official source for {missing_ours}")
    for ours, (theirs, transform) in table.items():
        if theirs not in params:
            problems.append(f"missing {theirs} (for {ours})")
            continue
        value = np.ascontiguousarray(transform(np.asarray(params[theirs])))
        if tuple(value.shape) != tuple(expected[ours].shape):
            problems.append(f"{theirs}: shape {tuple(params[theirs].shape)} does not fit {ours} "
                            f"{tuple(expected[ours].shape)}")
            continue
        state[ours] = torch.from_numpy(value).to(expected[ours].dtype)
    unexpected = sorted(set(params) - {theirs for theirs, _ in table.values()})
    if unexpected:
        problems.append(f"unexpected keys {unexpected}")
    if problems:
        raise CheckpointError("cannot convert MUSIQ checkpoint:\n  " + "\n  ".join(problems))
    return state


def convert_musiq_checkpoint(src: str | Path, dst: str | Path, scales: Optional[tuple[int, ...]] = None,
                             include_full_resolution: bool = True, max_full_side: Optional[int] = None,
                             **config_overrides: Any) -> MUSIQForImageQualityAssessment:
    """Convert ``src`` (official ``.npz``) and save model + image processor to ``dst``; return the model.

    Raises :class:`~hf_fiqa.models.conversion.CheckpointError` (``FileNotFoundError`` for a missing ``src``).

    ``scales`` defaults to the released checkpoints' (224, 384) + full resolution for 3 scale embeddings and
    full resolution only for 1; any other count needs explicit ``scales``.
    """
    params = load_official_params(src)
    config = config_from_params(params, **config_overrides)
    model = MUSIQForImageQualityAssessment(config)
    model.load_state_dict(official_to_hf(params, model), strict=True)
    model.eval()
    if scales is None:
        if config.num_scales not in DEFAULT_SCALES:
            raise CheckpointError(f"{config.num_scales} scale embeddings: give the resized scales explicitly")
        scales = DEFAULT_SCALES[config.num_scales]
    processor = MUSIQImageProcessor(patch_size=config.patch_size, spatial_grid_size=config.spatial_grid_size,
                                    scales=scales, include_full_resolution=include_full_resolution,
                                    max_full_side=max_full_side)
    if processor.num_scales > config.num_scales:
        raise CheckpointError(f"the processor would emit {processor.num_scales} scales, the checkpoint has "
                              f"{config.num_scales} scale embeddings")
    dst = Path(dst)
    model.save_pretrained(dst)
    processor.save_pretrained(dst)
    return model


def summarize(model: MUSIQForImageQualityAssessment) -> str:
    """One line about a converted model, for ``hf-fiqa convert musiq``."""
    return f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters, {model.config.head} head"
