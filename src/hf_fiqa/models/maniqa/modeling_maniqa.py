"""MANIQA as a transformers model, built to give the official numbers with less work.

Differences from the official implementation that do not change the numbers:
- the timm ViT is pruned after the last block whose output is used (blocks 10, 11, the final norm and the
  classifier head are never built), and intermediate outputs come from timm's ``forward_intermediates``
  instead of forward hooks on every block;
- attention in the transposed-attention blocks and Swin windows goes through
  ``F.scaled_dot_product_attention`` (fused, no materialised softmax input);
- the patch-weighted score is computed for the whole batch at once, not in a per-sample Python loop.

The transposed-attention output keeps the official ``transpose(1, 2).reshape(B, C, N)`` quirk: it mixes
channels and tokens, and official checkpoints were trained through it.

This file only imports torch, timm and transformers (plus its sibling config) so that it can be shipped as
remote code next to a checkpoint on the Hub.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import timm
import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from .configuration_maniqa import MANIQAConfig


@dataclass
class MANIQAOutput(ModelOutput):
    """``score`` is the image quality (B,) or (B, num_outputs), in the units of ``config.label_range`` when set;
    per-patch maps are (B, H, W[, num_outputs]); ``patch_scores`` are in the same units as ``score`` (whose
    value is their ``patch_weights``-weighted mean). ``loss`` compares the head's [0, 1]-scaled output with
    ``labels`` (scaled the same way). ``quality`` is ``score`` on the calibrated 0-100 scale, present when the
    config has a ``quality_calibration``."""

    loss: Optional[torch.Tensor] = None
    score: Optional[torch.Tensor] = None
    patch_scores: Optional[torch.Tensor] = None
    patch_weights: Optional[torch.Tensor] = None
    quality: Optional[torch.Tensor] = None


def calibrated_quality(score: torch.Tensor, calibration: Optional[dict]) -> Optional[torch.Tensor]:
    """``100 / (1 + exp(a + b * score))``: the config's logistic calibration of ``score`` to 0-100."""
    if calibration is None:
        return None
    logit = calibration["intercept"] + calibration["slope"] * score.detach().to(torch.float64)
    return (100.0 * torch.sigmoid(-logit)).to(score.dtype)


def to_label_units(score: torch.Tensor, label_range: Optional[Sequence[float]]) -> torch.Tensor:
    """The head's [0, 1]-scaled output in the units of the training labels: ``low + (high - low) * score``."""
    if label_range is None:
        return score
    low, high = label_range
    return score * (high - low) + low


class TransposedAttention(nn.Module):
    """Self-attention across channels: tokens are the feature axis, so the attention map is C x C.

    Without gradients, the query and key projections are folded into one. With q = x Wq^T + bq and
    k = x Wk^T + bk, the logits q k^T equal q' x^T, with q' = x (Wk^T Wq)^T + Wk^T bq, plus terms that are
    constant along the softmax axis (which softmax ignores). So softmax(q k^T) = softmax(q' x^T): one N x N
    projection per block is saved. The folded weight is computed once per weight version and kept.
    """

    def __init__(self, num_tokens: int, dropout: float):
        super().__init__()
        self.c_q = nn.Linear(num_tokens, num_tokens)
        self.c_k = nn.Linear(num_tokens, num_tokens)
        self.c_v = nn.Linear(num_tokens, num_tokens)
        self.proj_drop = nn.Dropout(dropout)
        self._folded: tuple | None = None

    def _folded_query(self) -> tuple[torch.Tensor, torch.Tensor]:
        wq, bq, wk = self.c_q.weight, self.c_q.bias, self.c_k.weight
        if _exporting():  # traced graphs (torch.export / ONNX) have no data pointers: fold in the graph
            return (wk.float().t() @ wq.float()).to(wq.dtype), (wk.float().t() @ bq.float()).to(wq.dtype)
        key = (wq.data_ptr(), wk.data_ptr(), bq.data_ptr(), wq._version, wk._version, bq._version, wq.dtype)
        if self._folded is None or self._folded[0] != key:
            weight = (wk.float().t() @ wq.float()).to(wq.dtype)  # acts on x like Wk^T Wq
            bias = (wk.float().t() @ bq.float()).to(wq.dtype)
            self._folded = (key, weight, bias)
        return self._folded[1], self._folded[2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, C, N)
        batch, channels, tokens = x.shape
        if torch.is_grad_enabled():
            q, k = self.c_q(x), self.c_k(x)
        else:
            q, k = F.linear(x, *self._folded_query()), x
        v = self.c_v(x)
        # The C x C maps (37 MB per sample at C = 3072) are made for a few samples at a time, bounding memory.
        # An exported graph has a symbolic batch: one chunk (the runtime then owns memory planning).
        if _exporting():
            out = _channel_attention(q, k, v).transpose(1, 2).reshape(batch, channels, tokens)
            return x + self.proj_drop(out)
        step = max(1, _ATTENTION_ELEMENTS // (channels * channels))
        out = torch.cat([_channel_attention(q[i:i + step], k[i:i + step], v[i:i + step])
                         for i in range(0, batch, step)])
        out = out.transpose(1, 2).reshape(batch, channels, tokens)  # official quirk, see module docstring
        return x + self.proj_drop(out)


_ATTENTION_ELEMENTS = 1 << 27  # attention-map elements per chunk (512 MB in float32)


def _exporting() -> bool:
    """True while torch.export / torch.onnx (dynamo) or the TorchScript tracer records the graph."""
    compiler = getattr(torch, "compiler", None)
    return bool((compiler is not None and hasattr(compiler, "is_exporting") and compiler.is_exporting())
                or torch.jit.is_tracing())


def _channel_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(N)) v for (B, C, N) inputs; N^-0.5 is the official norm_fact."""
    if q.dtype == torch.float32:  # SDPA's default scale is N^-0.5
        return F.scaled_dot_product_attention(q.unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1)).squeeze(1)
    # In bf16/fp16, SDPA on CPU is ~3x slower than two matmuls at this head size (N = 784).
    return torch.bmm(torch.softmax(torch.bmm(q * q.shape[-1] ** -0.5, k.transpose(1, 2)), dim=-1), v)


def _window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * num_windows, window * window, C)."""
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, window * window, c)


def _window_merge(windows: torch.Tensor, window: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`_window_partition`."""
    c = windows.shape[-1]
    x = windows.view(-1, h // window, w // window, window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, w, c)


# Index and mask tables are derived from the geometry alone. They are cached per geometry and device instead of
# being registered as buffers: transformers 5 materialises non-persistent buffers empty when loading, and
# persistent ones would put derived state into checkpoints. A plain dict keeps torch.compile tracing quiet.
_TABLES: dict[tuple, torch.Tensor] = {}


def _table(kind: str, device: torch.device, *geometry: int) -> torch.Tensor:
    key = (kind, str(device)) + geometry
    build = _relative_position_index if kind == "index" else _shifted_window_mask
    if _exporting():  # built inside the traced graph (fake tensors there must not reach the cache)
        return build(*geometry).to(device)
    if key not in _TABLES:
        # Built as ordinary tensors even when first needed under inference_mode, so that a later training
        # step (which saves the index for backward) can use the cached table.
        with torch.inference_mode(False):
            _TABLES[key] = build(*geometry).to(device)
    return _TABLES[key]


def _relative_position_index(window: int) -> torch.Tensor:
    grid = torch.arange(window, device="cpu")
    coords = torch.stack(torch.meshgrid(grid, grid, indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
    return rel[..., 0] * (2 * window - 1) + rel[..., 1]  # (window^2, window^2)


def _shifted_window_mask(grid: int, window: int, shift: int) -> torch.Tensor:
    """Additive mask (num_windows, window^2, window^2) keeping attention inside regions after the roll."""
    region = torch.zeros(1, grid, grid, 1, device="cpu")
    bounds = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    label = 0
    for hs in bounds:
        for ws in bounds:
            region[:, hs, ws, :] = label
            label += 1
    windows = _window_partition(region, window).squeeze(-1)
    diff = windows.unsqueeze(1) - windows.unsqueeze(2)
    return torch.where(diff != 0, -100.0, 0.0)  # -100 as in the official Swin


class DropPath(nn.Module):
    """Stochastic depth per sample (identity at eval)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class SwinBlock(nn.Module):
    def __init__(self, dim: int, heads: int, grid: int, window: int, shift: int, mlp_dim: int,
                 drop_path: float, eps: float):
        super().__init__()
        if grid <= window:  # a window covering the whole grid: nothing to shift
            window, shift = grid, 0
        self.heads, self.grid, self.window, self.shift = heads, grid, window, shift
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = WindowAttention(dim, heads, window)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = nn.Sequential()
        self.mlp.fc1 = nn.Linear(dim, mlp_dim)
        self.mlp.act = nn.GELU()
        self.mlp.fc2 = nn.Linear(mlp_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, L, C)
        b, _, c = x.shape
        h = self.norm1(x).view(b, self.grid, self.grid, c)
        if self.shift:
            h = torch.roll(h, shifts=(-self.shift, -self.shift), dims=(1, 2))
        mask = _table("mask", x.device, self.grid, self.window, self.shift) if self.shift else None
        h = self.attn(_window_partition(h, self.window), mask)
        h = _window_merge(h, self.window, self.grid, self.grid)
        if self.shift:
            h = torch.roll(h, shifts=(self.shift, self.shift), dims=(1, 2))
        x = x + self.drop_path(h.reshape(b, -1, c))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class WindowAttention(nn.Module):
    def __init__(self, dim: int, heads: int, window: int):
        super().__init__()
        self.heads, self.window = heads, window
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:  # x: (B*nW, N, C)
        bw, n, c = x.shape
        q, k, v = self.qkv(x).view(bw, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        index = _table("index", x.device, self.window)
        bias = self.relative_position_bias_table[index.view(-1)]
        bias = bias.view(n, n, self.heads).permute(2, 0, 1).unsqueeze(0)  # (1, heads, N, N)
        if mask is not None:  # (nW, N, N) -> broadcast over batch and heads
            num_windows = mask.shape[0]
            bias = (bias + mask.unsqueeze(1)).repeat(bw // num_windows, 1, 1, 1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype))
        return self.proj(out.transpose(1, 2).reshape(bw, n, c))


class SwinGroup(nn.Module):
    """Swin blocks (alternating shift 0 / window // 2) followed by a 3x3 conv + ReLU on the token grid."""

    def __init__(self, dim: int, depth: int, heads: int, grid: int, window: int, mlp_dim: int,
                 drop_paths: list[float], eps: float):
        super().__init__()
        self.grid = grid
        self.blocks = nn.ModuleList(
            SwinBlock(dim, heads, grid, window, 0 if i % 2 == 0 else window // 2, mlp_dim, drop_paths[i], eps)
            for i in range(depth)
        )
        self.conv = nn.Conv2d(dim, dim, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, C)
        for block in self.blocks:
            x = block(x)
        b, length, c = x.shape
        x = x.transpose(1, 2).reshape(b, c, self.grid, self.grid)
        return F.relu(self.conv(x)).flatten(2).transpose(1, 2)


class SwinStage(nn.Module):
    def __init__(self, config: MANIQAConfig, dim: int):
        super().__init__()
        self.scale = config.swin_residual_scale
        self.grid = config.grid_size
        self.dropout = nn.Dropout(config.dropout)
        rates = torch.linspace(0, config.drop_path, sum(config.swin_depths)).tolist()
        self.groups = nn.ModuleList()
        start = 0
        for depth, heads in zip(config.swin_depths, config.swin_num_heads):
            self.groups.append(SwinGroup(dim, depth, heads, self.grid, config.window_size, config.mlp_dim,
                                         rates[start:start + depth], config.layer_norm_eps))
            start += depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H, W)
        b, c, h, w = x.shape
        x = self.dropout(x).flatten(2).transpose(1, 2)
        for group in self.groups:
            x = self.scale * group(x) + x
        return x.transpose(1, 2).reshape(b, c, h, w)


class MANIQAStage(nn.Module):
    """Transposed-attention blocks on (B, C, N), a 1x1 channel projection, then a Swin stage."""

    def __init__(self, config: MANIQAConfig, in_dim: int, out_dim: int):
        super().__init__()
        tokens = config.grid_size ** 2
        self.tabs = nn.ModuleList(TransposedAttention(tokens, config.dropout) for _ in range(config.num_tab))
        self.conv = nn.Conv2d(in_dim, out_dim, 1)
        self.swin = SwinStage(config, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W)
        b, c, h, w = x.shape
        x = x.reshape(b, c, h * w)
        for tab in self.tabs:
            x = tab(x)
        return self.swin(self.conv(x.view(b, c, h, w)))


SCORE_LOSSES = {"mse": F.mse_loss, "smooth_l1": F.smooth_l1_loss, "l1": F.l1_loss}


def _mlp_head(dim: int, outputs: int, dropout: float, final: nn.Module) -> nn.Sequential:
    # Indices 0 and 3 hold the Linear layers, matching the official fc_score / fc_weight layout.
    return nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(dim, outputs), final)


class MANIQAPreTrainedModel(PreTrainedModel):
    config_class = MANIQAConfig
    base_model_prefix = "maniqa"
    main_input_name = "pixel_values"
    supports_gradient_checkpointing = False
    _supports_sdpa = True


    def _init_weights(self, module: nn.Module) -> None:
        # timm initialises the backbone itself; these follow the official (PyTorch default + Swin) init.
        if isinstance(module, WindowAttention):
            nn.init.trunc_normal_(module.relative_position_bias_table, std=0.02)


class MANIQAForImageQualityAssessment(MANIQAPreTrainedModel):
    """MANIQA quality regressor. ``forward(pixel_values)`` -> ``score`` (B,) plus per-patch scores and weights."""
    # save_pretrained writes this code and an auto_map beside the weights (trust_remote_code loading)
    _auto_class = "AutoModel"
    # Backbone classes by model_type, used before AutoBackbone: a saved folder's generated code fills it
    # (hf_fiqa.hub.packaging), so that such a folder loads with trust_remote_code alone.
    trunk_backbone_classes: dict = {}

    def __init__(self, config: MANIQAConfig):
        super().__init__(config)
        if config.backbone_config is not None:  # a transformers backbone (a recognizer's trunk)
            from transformers import AutoBackbone

            known = self.trunk_backbone_classes.get(config.backbone_config.model_type)
            self.backbone = known(config.backbone_config) if known else AutoBackbone.from_config(config.backbone_config)
            in_dim = sum(self.backbone.channels)
        else:
            self.backbone = timm.create_model(
                config.backbone,
                pretrained=False,
                img_size=config.image_size,
                patch_size=config.patch_size,
                embed_dim=config.backbone_embed_dim,
                depth=config.backbone_depth,
                num_heads=config.backbone_num_heads,
                num_classes=0,
            )
            # Only blocks up to the last used index are kept; final norm and head are dropped.
            self.backbone.prune_intermediate_layers(config.feature_layers, prune_norm=True, prune_head=True)
            in_dim = config.backbone_embed_dim * len(config.feature_layers)
        self.stage1 = MANIQAStage(config, in_dim, config.embed_dim)
        self.stage2 = MANIQAStage(config, config.embed_dim, config.embed_dim // 2)
        head_dim = config.embed_dim // 2
        self.score_head = _mlp_head(head_dim, config.num_outputs, config.dropout, nn.ReLU())
        self.weight_head = _mlp_head(head_dim, config.num_outputs, config.dropout, nn.Sigmoid())
        # The score head ends in a ReLU: start its output at 0.5, the middle of the [0, 1] label range, so that
        # training from scratch does not begin with a dead head (all-zero scores, no gradient).
        nn.init.constant_(self.score_head[3].bias, 0.5)
        self.post_init()

    def backbone_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Concatenated outputs of the configured ViT blocks, class token dropped, or of the backbone's maps
        average-pooled to the token grid: (B, C, H, W). What a frozen backbone gives can be computed once and
        fed to ``forward(backbone_features=...)``."""
        if self.config.backbone_config is not None:
            return self.pool_backbone_maps(self.backbone(pixel_values).feature_maps)
        feats = self.backbone.forward_intermediates(
            pixel_values, indices=self.config.feature_layers, norm=False, output_fmt="NLC", intermediates_only=True
        )
        x = torch.cat(feats, dim=-1)  # (B, N, C)
        grid = self.config.grid_size
        return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], grid, grid)

    def pool_backbone_maps(self, maps: Sequence[torch.Tensor]) -> torch.Tensor:
        """A transformers backbone's ``feature_maps`` average-pooled to the token grid and concatenated."""
        grid = self.config.grid_size
        return torch.cat([m if m.shape[-1] == grid else F.adaptive_avg_pool2d(m, grid) for m in maps], dim=1)

    def forward_features(self, pixel_values: Optional[torch.Tensor] = None,
                         backbone_features: Optional[torch.Tensor] = None) -> torch.Tensor:
        """timm-style features: the last stage's tokens (B, N, C), one per patch of the ``grid_size`` grid
        (row-major), before the score and weight heads. ``backbone_features``: :meth:`backbone_features`'
        output computed beforehand (a frozen backbone's, cached), in place of ``pixel_values``."""
        if backbone_features is None:
            expected = self.config.image_size
            if pixel_values is None or pixel_values.ndim != 4 or pixel_values.shape[1] != 3 \
                    or tuple(pixel_values.shape[-2:]) != (expected, expected):
                shape = None if pixel_values is None else tuple(pixel_values.shape)
                raise ValueError(
                    f"MANIQA expects pixel_values of shape (B, 3, {expected}, {expected}), got {shape}; "
                    "use MANIQAImageProcessor to crop or resize images"
                )
            backbone_features = self.backbone_features(pixel_values)
        x = self.stage2(self.stage1(backbone_features))  # (B, C, H, W)
        return x.flatten(2).transpose(1, 2)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False, return_patches: bool = False):
        """timm-style head on :meth:`forward_features`' tokens: the patch-weighted score (B, num_outputs) on the
        head's [0, 1] scale (``forward`` maps it to ``config.label_range`` units and computes the loss on it).

        ``pre_logits=True``: the tokens' mean (B, C) instead (pooled features for probes). ``return_patches=True``:
        ``(score, patch_scores, patch_weights)``, the per-patch maps being (B, N, num_outputs)."""
        if pre_logits:
            return features.transpose(1, 2).mean(-1)
        patch_scores = self.score_head(features)  # (B, N, K)
        patch_weights = self.weight_head(features)
        score = (patch_scores * patch_weights).sum(1) / patch_weights.sum(1)  # (B, K)
        return (score, patch_scores, patch_weights) if return_patches else score

    def forward(
        self,
        pixel_values: Optional[torch.Tensor] = None,
        labels: Optional[torch.Tensor] = None,
        return_dict: Optional[bool] = None,
        backbone_features: Optional[torch.Tensor] = None,
        **kwargs,
    ) -> MANIQAOutput | tuple:
        tokens = self.forward_features(pixel_values, backbone_features)  # (B, N, C)
        score, patch_scores, patch_weights = self.forward_head(tokens, return_patches=True)

        loss = None
        if labels is not None:
            loss = SCORE_LOSSES[self.config.loss_type](score.float(), labels.float().view_as(score))

        score = to_label_units(score, getattr(self.config, "label_range", None))
        patch_scores = to_label_units(patch_scores, getattr(self.config, "label_range", None))
        grid = self.config.grid_size
        if self.config.num_outputs == 1:
            score = score.squeeze(-1)
            patch_scores = patch_scores.squeeze(-1)
            patch_weights = patch_weights.squeeze(-1)
        shape = (tokens.shape[0], grid, grid) + patch_scores.shape[2:]
        quality = None
        if self.config.num_outputs == 1 and not _exporting():  # ONNX exports give score; their scorer calibrates
            quality = calibrated_quality(score, getattr(self.config, "quality_calibration", None))
        output = MANIQAOutput(
            loss=loss, score=score, patch_scores=patch_scores.reshape(shape), patch_weights=patch_weights.reshape(shape),
            quality=quality,
        )
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        return output if return_dict else output.to_tuple()
