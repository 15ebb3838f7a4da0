"""Convert a MANIQA checkpoint in the official key layout into a saved hf-fiqa model folder.

The geometry (widths, depths, heads, token grid, number of outputs) is read off the tensor shapes, so a
checkpoint of any MANIQA variant converts without flags. Two things cannot be read off the weights and can
be given: which ViT blocks feed the model (default 6,7,8,9, the paper's) and the Swin residual scale (0.8 in
the paper; some released checkpoints were trained with 0.13).

Keys the official model carries but never uses (ViT blocks after the last used one, final norm, classifier
head, each Swin stage's ``downsample`` conv) and derived tables (relative position index, shifted-window mask)
are dropped. Any other key that does not map, a key that is missing, or a shape that differs aborts with one
message listing all of them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from ..conversion import CheckpointError, compare_state_dicts, load_torch_checkpoint
from .configuration_maniqa import MANIQAConfig
from .image_processing_maniqa import MANIQAImageProcessor
from .modeling_maniqa import MANIQAForImageQualityAssessment

_UNUSED = re.compile(
    r"^(vit\.(norm|fc_norm|head|head_drop)\.|swintransformer[12]\.downsample\.|.*\.relative_position_index$|.*\.attn_mask$)"
)
_RENAMES = [
    (re.compile(r"^vit\."), "backbone."),
    (re.compile(r"^tablock([12])\.(\d+)\."), r"stage\1.tabs.\2."),
    (re.compile(r"^conv([12])\."), r"stage\1.conv."),
    (re.compile(r"^swintransformer([12])\.layers\.(\d+)\."), r"stage\1.swin.groups.\2."),
    (re.compile(r"^fc_score\."), "score_head."),
    (re.compile(r"^fc_weight\."), "weight_head."),
]


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a ``.pth``/``.pt``/``.bin`` (never unpickling arbitrary objects) or ``.safetensors`` state dict.

    A whole pickled model object cannot be read safely; re-save its ``state_dict()`` first.
    A missing file raises ``FileNotFoundError``, an unreadable one :class:`CheckpointError`.
    """
    return unwrap_state_dict(load_torch_checkpoint(path), str(path))


def unwrap_state_dict(obj: Any, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Strip the usual wrappers: ``{"state_dict"|"model"|"model_state_dict": ...}`` and ``module.`` prefixes."""
    for key in ("state_dict", "model_state_dict", "model", "net"):
        if isinstance(obj, Mapping) and key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{source}: expected a mapping of parameter names to tensors")
    state = dict(obj)
    while state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def _count(state: Mapping[str, torch.Tensor], pattern: str) -> int:
    found = {int(m.group(1)) for k in state if (m := re.match(pattern, k))}
    return max(found) + 1 if found else 0


def infer_config(state: Mapping[str, torch.Tensor], feature_layers: Sequence[int] = (6, 7, 8, 9),
                 swin_residual_scale: float = 0.8, **overrides: Any) -> MANIQAConfig:
    """Build the :class:`MANIQAConfig` that matches an official-layout state dict."""
    required = ["vit.patch_embed.proj.weight", "vit.pos_embed", "conv1.weight",
                "swintransformer1.layers.0.blocks.0.attn.relative_position_bias_table",
                "swintransformer1.layers.0.blocks.0.mlp.fc1.weight", "fc_score.3.weight"]
    missing = [k for k in required if k not in state]
    if missing:
        raise CheckpointError("not an official MANIQA checkpoint: missing keys " + ", ".join(missing))
    patch = state["vit.patch_embed.proj.weight"]
    vit_dim, patch_size = patch.shape[0], patch.shape[-1]
    num_tokens = state["vit.pos_embed"].shape[1] - 1  # minus the class token
    grid = int(round(num_tokens ** 0.5))
    bias_table = state["swintransformer1.layers.0.blocks.0.attn.relative_position_bias_table"]
    window = (int(round(bias_table.shape[0] ** 0.5)) + 1) // 2
    num_groups = _count(state, r"swintransformer1\.layers\.(\d+)\.")
    depths = [_count(state, rf"swintransformer1\.layers\.{g}\.blocks\.(\d+)\.") for g in range(num_groups)]
    heads = [state[f"swintransformer1.layers.{g}.blocks.0.attn.relative_position_bias_table"].shape[1] for g in range(num_groups)]
    vit_depth = _count(state, r"vit\.blocks\.(\d+)\.")
    # Head count is not visible in the weights; standard ViTs use 64-wide heads.
    vit_heads = overrides.pop("backbone_num_heads", None)
    if vit_heads is None:
        if vit_dim % 64:
            raise CheckpointError(f"ViT width {vit_dim} is not a multiple of 64: give backbone_num_heads explicitly")
        vit_heads = vit_dim // 64
    values: dict[str, Any] = dict(
        image_size=grid * patch_size, patch_size=patch_size, backbone_embed_dim=vit_dim, backbone_depth=vit_depth,
        backbone_num_heads=vit_heads,
        feature_layers=list(feature_layers), embed_dim=state["conv1.weight"].shape[0],
        num_tab=_count(state, r"tablock1\.(\d+)\."), swin_depths=depths, swin_num_heads=heads, window_size=window,
        mlp_dim=state["swintransformer1.layers.0.blocks.0.mlp.fc1.weight"].shape[0],
        swin_residual_scale=swin_residual_scale, num_outputs=state["fc_score.3.weight"].shape[0],
    )
    values.update(overrides)
    in_channels = state["conv1.weight"].shape[1]
    if in_channels != vit_dim * len(values["feature_layers"]):
        raise CheckpointError(
            f"conv1 takes {in_channels} channels = {in_channels // vit_dim} ViT blocks of width {vit_dim}, "
            f"but feature_layers={values['feature_layers']} names {len(values['feature_layers'])}")
    return MANIQAConfig(**values)


def official_to_hf(state: Mapping[str, torch.Tensor], model: MANIQAForImageQualityAssessment) -> dict[str, torch.Tensor]:
    """Rename official keys to this model's, checking names and shapes; raises one error listing all problems."""
    expected = model.state_dict()
    last_block = max(model.config.feature_layers)
    converted: dict[str, torch.Tensor] = {}
    unexpected: list[str] = []
    for key, tensor in state.items():
        block = re.match(r"^vit\.blocks\.(\d+)\.", key)
        if _UNUSED.match(key) or (block and int(block.group(1)) > last_block):
            continue
        new = key
        for pattern, replacement in _RENAMES:
            new = pattern.sub(replacement, new, count=1)
        if new not in expected:
            unexpected.append(key)
            continue
        converted[new] = tensor
    missing, _, shapes = compare_state_dicts(expected, converted)
    if missing or unexpected or shapes:
        raise CheckpointError.mismatch("checkpoint does not match the MANIQA layout:", missing, unexpected, shapes)
    return converted


def convert_maniqa_checkpoint(src: str | Path, dst: str | Path, feature_layers: Sequence[int] = (6, 7, 8, 9),
                              swin_residual_scale: float = 0.8, policy: str = "resize",
                              **config_overrides: Any) -> MANIQAForImageQualityAssessment:
    """Convert ``src`` (official layout) and ``save_pretrained`` model + image processor into ``dst``.

    Raises :class:`~hf_fiqa.models.conversion.CheckpointError` (``FileNotFoundError`` for a missing ``src``).
    """
    state = load_state_dict(src)
    config = infer_config(state, feature_layers, swin_residual_scale, **config_overrides)
    model = MANIQAForImageQualityAssessment(config)
    model.load_state_dict(official_to_hf(state, model), strict=True)
    model.eval()
    model.save_pretrained(dst)
    MANIQAImageProcessor(crop_size=config.image_size, policy=policy).save_pretrained(dst)
    return model
