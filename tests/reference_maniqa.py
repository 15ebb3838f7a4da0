"""MANIQA in the official structure and checkpoint key layout, kept as the yardstick.

It computes what the official code computes, the slow way: the full ViT (all blocks, final norm, classifier
head) with forward hooks collecting every block output, attention with an explicit softmax, and a Python loop
over samples for the patch-weighted score. Its ``state_dict`` has the official keys (``vit.``, ``tablock1.``,
``swintransformer1.layers.{g}.blocks.{b}.attn.relative_position_index``, ...).

It lives with the tests and is used for two things only: to check that ``convert_maniqa`` and the fast model reproduce official
numbers, and as the baseline of ``bench/bench_maniqa.py``. Use :class:`MANIQAForImageQualityAssessment` for
everything else.
"""

from __future__ import annotations

import timm
import torch
import torch.nn.functional as F
from torch import nn

from hf_fiqa.models.maniqa.configuration_maniqa import MANIQAConfig
from hf_fiqa.models.maniqa.modeling_maniqa import _relative_position_index, _shifted_window_mask, _window_merge, _window_partition


class _TABlock(nn.Module):
    def __init__(self, dim: int, drop: float):
        super().__init__()
        self.c_q, self.c_k, self.c_v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.norm_fact = dim ** -0.5
        self.proj_drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, n = x.shape
        attn = torch.softmax(self.c_q(x) @ self.c_k(x).transpose(-2, -1) * self.norm_fact, dim=-1)
        return x + self.proj_drop((attn @ self.c_v(x)).transpose(1, 2).reshape(b, c, n))


class _WindowAttention(nn.Module):
    def __init__(self, dim: int, heads: int, window: int):
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        self.register_buffer("relative_position_index", _relative_position_index(window).clone())
        self.qkv, self.proj = nn.Linear(dim, dim * 3), nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        bw, n, c = x.shape
        q, k, v = self.qkv(x).reshape(bw, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(n, n, -1)
        attn = attn + bias.permute(2, 0, 1).unsqueeze(0)
        if mask is not None:
            nw = mask.shape[0]
            attn = (attn.view(bw // nw, nw, self.heads, n, n) + mask.unsqueeze(1).unsqueeze(0)).view(-1, self.heads, n, n)
        attn = torch.softmax(attn, dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(bw, n, c))


class _SwinBlock(nn.Module):
    def __init__(self, dim, heads, grid, window, shift, mlp_dim, eps):
        super().__init__()
        self.grid, self.window, self.shift = grid, window, shift
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=eps), nn.LayerNorm(dim, eps=eps)
        self.attn = _WindowAttention(dim, heads, window)
        self.mlp = nn.Sequential()
        self.mlp.fc1, self.mlp.act, self.mlp.fc2 = nn.Linear(dim, mlp_dim), nn.GELU(), nn.Linear(mlp_dim, dim)
        self.register_buffer("attn_mask", _shifted_window_mask(grid, window, shift).clone() if shift else None)

    def forward(self, x):
        b, _, c = x.shape
        h = self.norm1(x).view(b, self.grid, self.grid, c)
        if self.shift:
            h = torch.roll(h, (-self.shift, -self.shift), (1, 2))
        h = _window_merge(self.attn(_window_partition(h, self.window), self.attn_mask), self.window, self.grid, self.grid)
        if self.shift:
            h = torch.roll(h, (self.shift, self.shift), (1, 2))
        x = x + h.reshape(b, -1, c)
        return x + self.mlp(self.norm2(x))


class _BasicLayer(nn.Module):
    def __init__(self, dim, depth, heads, grid, window, mlp_dim, eps):
        super().__init__()
        self.grid = grid
        self.conv = nn.Conv2d(dim, dim, 3, 1, 1)
        self.blocks = nn.ModuleList(
            _SwinBlock(dim, heads, grid, window, 0 if i % 2 == 0 else window // 2, mlp_dim, eps) for i in range(depth))

    def forward(self, x):
        for blk in self.blocks:
            x = blk(x)
        b, _, c = x.shape
        x = F.relu(self.conv(x.transpose(1, 2).reshape(b, c, self.grid, self.grid)))
        return x.flatten(2).transpose(1, 2)


class _SwinTransformer(nn.Module):
    def __init__(self, config: MANIQAConfig, dim: int):
        super().__init__()
        self.scale, self.grid = config.swin_residual_scale, config.grid_size
        self.dropout = nn.Dropout(config.dropout)
        self.downsample = nn.Conv2d(dim, dim, 3, 2, 1)  # present in official checkpoints, never used
        self.layers = nn.ModuleList(
            _BasicLayer(dim, d, h, self.grid, config.window_size, config.mlp_dim, config.layer_norm_eps)
            for d, h in zip(config.swin_depths, config.swin_num_heads))

    def forward(self, x):
        b, c, h, w = x.shape
        x = self.dropout(x).flatten(2).transpose(1, 2)
        for layer in self.layers:
            x = self.scale * layer(x) + x
        return x.transpose(1, 2).reshape(b, c, h, w)


class ReferenceMANIQA(nn.Module):
    """Eval-only official-structure MANIQA (no drop-path: scores are compared in eval mode)."""

    def __init__(self, config: MANIQAConfig):
        super().__init__()
        self.config = config
        self.vit = timm.create_model(
            config.backbone, pretrained=False, img_size=config.image_size, patch_size=config.patch_size,
            embed_dim=config.backbone_embed_dim, depth=config.backbone_depth, num_heads=config.backbone_num_heads)
        self._saved: list[torch.Tensor] = []
        for block in self.vit.blocks:
            block.register_forward_hook(lambda _m, _i, out: self._saved.append(out))
        n, e = config.grid_size ** 2, config.embed_dim
        self.tablock1 = nn.ModuleList(_TABlock(n, config.dropout) for _ in range(config.num_tab))
        self.conv1 = nn.Conv2d(config.backbone_embed_dim * len(config.feature_layers), e, 1, 1, 0)
        self.swintransformer1 = _SwinTransformer(config, e)
        self.tablock2 = nn.ModuleList(_TABlock(n, config.dropout) for _ in range(config.num_tab))
        self.conv2 = nn.Conv2d(e, e // 2, 1, 1, 0)
        self.swintransformer2 = _SwinTransformer(config, e // 2)
        k = config.num_outputs
        self.fc_score = nn.Sequential(nn.Linear(e // 2, e // 2), nn.ReLU(), nn.Dropout(config.dropout), nn.Linear(e // 2, k), nn.ReLU())
        self.fc_weight = nn.Sequential(nn.Linear(e // 2, e // 2), nn.ReLU(), nn.Dropout(config.dropout), nn.Linear(e // 2, k), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.config.grid_size
        self.vit(x)
        x = torch.cat([self._saved[i][:, 1:] for i in self.config.feature_layers], dim=2)
        self._saved.clear()
        x = x.transpose(1, 2)  # b (h w) c -> b c (h w)
        for tab in self.tablock1:
            x = tab(x)
        x = self.swintransformer1(self.conv1(x.reshape(x.shape[0], -1, g, g)))
        x = x.flatten(2)
        for tab in self.tablock2:
            x = tab(x)
        x = self.swintransformer2(self.conv2(x.reshape(x.shape[0], -1, g, g)))
        x = x.flatten(2).transpose(1, 2)
        scores = []
        for i in range(x.shape[0]):  # the official per-sample loop
            f, w = self.fc_score(x[i]), self.fc_weight(x[i])
            scores.append(torch.sum(f * w) / torch.sum(w))
        return torch.stack(scores)
