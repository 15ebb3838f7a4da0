"""MUSIQ as a transformers model, written from the facts of the official JAX/flax code (google-research/musiq).

Input: a padded sequence of 32x32 patches from several scales of one image (see ``MUSIQImageProcessor``), with a
hash-based spatial position, a scale index and a validity mask per patch.

- Patch stem (official ``resnet_emb.num_layers = 5``): weight-standardised 7x7 stride-2 conv (no bias) -> GroupNorm
  (32 groups, eps 1e-6) -> ReLU -> 3x3 stride-2 max-pool -> one bottleneck unit (1x1, 3x3, 1x1 convs of width 64,
  output 256, GroupNorm eps 1e-4, 1x1 projection shortcut, last GroupNorm initialised to zero). All convs and the
  pool use TensorFlow "SAME" padding, which pads *more on the bottom/right* (7x7/2 on 32 pixels pads 2 then 3);
  PyTorch's symmetric ``padding=`` would shift every window by a pixel, so the padding is done explicitly.
  Weight standardisation uses the population std, ``(w - mean) / (std + 1e-5)`` over (in, kh, kw).
- The 8x8x256 stem output is flattened in HWC order (as the NHWC JAX code does) and embedded by a Linear -> 384.
- Encoder: token += spatial_table[hash position] (+ scale_table[scale index]); a zero-initialised [CLS] token is
  prepended (always valid); 14 pre-norm layers (LayerNorm eps 1e-6 -> multi-head attention with separate
  query/key/value/out projections -> residual; LayerNorm -> Linear-GELU(tanh approximation, flax's default)-Linear
  -> residual); final LayerNorm; the head reads [CLS].
- Padding: padded patches are masked as attention *keys*. (The official mask also blanks padded query rows; their
  outputs never reach [CLS], so the score is the same.) Padded patches are not even run through the stem here.
- Layer drop (training only) follows the official code: a per-sample Bernoulli mask on each residual branch,
  *without* rescaling by 1 / (1 - p).

This file only imports torch and transformers (plus its sibling config) so that it can be shipped as remote code
next to a checkpoint on the Hub.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from .configuration_musiq import MUSIQConfig

# Patches run through the stem this many at a time, so that a batch of large images does not need one
# multi-gigabyte activation tensor (the stem works per patch, so chunking does not change results).
STEM_CHUNK = 2048
# Attribute marking layers whose weight starts at zero (official: the head, the last GroupNorm of a bottleneck).
ZERO_INIT = "_musiq_zero_init"


@dataclass
class MUSIQOutput(ModelOutput):
    """``score`` is the image quality (B,), in the units of ``config.label_range`` when set. ``logits``
    (B, num_outputs) is the raw head output; for the distribution head ``distribution`` (B, num_bins) is its
    softmax and ``score`` the expected bin (1..num_bins). ``loss`` is computed on the raw head output."""

    loss: Optional[torch.Tensor] = None
    score: Optional[torch.Tensor] = None
    logits: Optional[torch.Tensor] = None
    distribution: Optional[torch.Tensor] = None


# Copied from hf_fiqa.models.maniqa.modeling_maniqa.to_label_units
def to_label_units(score: torch.Tensor, label_range: Optional[Sequence[float]]) -> torch.Tensor:
    """The head's [0, 1]-scaled output in the units of the training labels: ``low + (high - low) * score``."""
    if label_range is None:
        return score
    low, high = label_range
    return score * (high - low) + low


# Copied from hf_fiqa.models.maniqa.modeling_maniqa._exporting
def _exporting() -> bool:
    """True while torch.export / torch.onnx (dynamo) or the TorchScript tracer records the graph."""
    compiler = getattr(torch, "compiler", None)
    return bool((compiler is not None and hasattr(compiler, "is_exporting") and compiler.is_exporting())
                or torch.jit.is_tracing())


# -- patch stem -------------------------------------------------------------------------------------------------
def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "SAME" padding (before, after) for one axis: output ceil(size / stride), extra pixel after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _pad_same(x: torch.Tensor, kernel: int, stride: int, value: float = 0.0) -> torch.Tensor:
    top, bottom = _same_padding(x.shape[-2], kernel, stride)
    left, right = _same_padding(x.shape[-1], kernel, stride)
    if top or bottom or left or right:
        x = F.pad(x, (left, right, top, bottom), value=value)
    return x


def _max_pool_same(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """Max-pool with TF "SAME" padding (padded cells never win). Avoids materialising a padded copy when the
    padding is symmetric (``padding=``) or only one cell after (``ceil_mode`` lets the last window run off the
    end), which covers the stem's 3x3/2 pool for every patch size."""
    pads = _same_padding(x.shape[-2], kernel, stride) + _same_padding(x.shape[-1], kernel, stride)
    if pads[0] == pads[1] == pads[2] == pads[3]:
        return F.max_pool2d(x, kernel, stride, padding=pads[0])
    if pads[0] == pads[2] == 0 and pads[1] <= 1 and pads[3] <= 1 and pads[1] == pads[3]:
        return F.max_pool2d(x, kernel, stride, ceil_mode=True)
    return F.max_pool2d(_pad_same(x, kernel, stride, value=float("-inf")), kernel, stride)


class StdConv2d(nn.Conv2d):
    """Bias-free convolution with weight standardisation and TF "SAME" padding (the official ``StdConv``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight
        mean = w.mean(dim=(1, 2, 3), keepdim=True)
        std = w.std(dim=(1, 2, 3), keepdim=True, correction=0)
        w = (w - mean) / (std + 1e-5)
        return F.conv2d(_pad_same(x, self.kernel_size[0], self.stride[0]), w, None, self.stride)


class MUSIQBottleneck(nn.Module):
    """ResNet v1 bottleneck unit with GroupNorm: 1x1 -> 3x3 (stride) -> 1x1 (x4), projection shortcut if needed."""

    def __init__(self, in_channels: int, width: int, stride: int, groups: int):
        super().__init__()
        out_channels = width * 4
        self.conv1 = StdConv2d(in_channels, width, 1)
        self.gn1 = nn.GroupNorm(groups, width, eps=1e-4)
        self.conv2 = StdConv2d(width, width, 3, stride)
        self.gn2 = nn.GroupNorm(groups, width, eps=1e-4)
        self.conv3 = StdConv2d(width, out_channels, 1)
        self.gn3 = nn.GroupNorm(groups, out_channels, eps=1e-4)
        setattr(self.gn3, ZERO_INIT, True)  # each unit starts as its shortcut
        self.conv_proj: Optional[StdConv2d] = None
        self.gn_proj: Optional[nn.GroupNorm] = None
        if in_channels != out_channels or stride != 1:
            self.conv_proj = StdConv2d(in_channels, out_channels, 1, stride)
            self.gn_proj = nn.GroupNorm(groups, out_channels, eps=1e-4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.conv_proj is None else self.gn_proj(self.conv_proj(x))
        x = F.relu(self.gn1(self.conv1(x)), inplace=True)
        x = F.relu(self.gn2(self.conv2(x)), inplace=True)
        x = self.gn3(self.conv3(x))
        return F.relu(residual + x, inplace=True)


class MUSIQPatchStem(nn.Module):
    """Small ResNet applied to every patch independently: (N, 3, P, P) -> (N, stem_features), flattened HWC."""

    def __init__(self, config: MUSIQConfig):
        super().__init__()
        width, groups = config.stem_width, config.stem_num_groups
        self.conv_root = StdConv2d(3, width, 7, 2)
        self.gn_root = nn.GroupNorm(groups, width, eps=1e-6)
        self.stages = nn.ModuleList()
        in_channels = width
        for i, units in enumerate(config.stem_blocks):
            stage_width = width * 2 ** i
            stage = nn.ModuleList()
            for j in range(units):
                stride = 2 if (i > 0 and j == 0) else 1
                stage.append(MUSIQBottleneck(in_channels, stage_width, stride, groups))
                in_channels = stage_width * 4
            self.stages.append(stage)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        # NHWC memory layout: about 1.6x faster convs + GroupNorm on CPU (oneDNN), and the final HWC flatten is free.
        patches = patches.contiguous(memory_format=torch.channels_last)
        x = F.relu(self.gn_root(self.conv_root(patches)), inplace=True)
        x = _max_pool_same(x, 3, 2)
        for stage in self.stages:
            for unit in stage:
                x = unit(x)
        return x.permute(0, 2, 3, 1).flatten(1)  # HWC order, as the NHWC official code flattens


# -- transformer ------------------------------------------------------------------------------------------------
class MUSIQSelfAttention(nn.Module):
    def __init__(self, config: MUSIQConfig):
        super().__init__()
        dim = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)
        self.dropout = config.attention_dropout

    def forward(self, x: torch.Tensor, key_mask: Optional[torch.Tensor]) -> torch.Tensor:
        b, n, d = x.shape
        heads = self.num_heads

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, n, heads, d // heads).transpose(1, 2)

        out = F.scaled_dot_product_attention(
            split(self.query(x)), split(self.key(x)), split(self.value(x)),
            attn_mask=key_mask, dropout_p=self.dropout if self.training else 0.0,
        )  # default scale head_dim ** -0.5, as flax's dot_product_attention
        return self.out(out.transpose(1, 2).reshape(b, n, d))


class MUSIQMLP(nn.Module):
    def __init__(self, config: MUSIQConfig):
        super().__init__()
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dropout(F.gelu(self.fc1(x), approximate="tanh"))
        return self.dropout(self.fc2(x))


class MUSIQLayer(nn.Module):
    """Pre-norm Transformer layer: x + Attn(LN(x)); x + MLP(LN(x))."""

    def __init__(self, config: MUSIQConfig, layer_drop: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.attention = MUSIQSelfAttention(config)
        self.dropout = nn.Dropout(config.hidden_dropout)
        self.norm2 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = MUSIQMLP(config)
        self.layer_drop = layer_drop

    def _drop_branch(self, h: torch.Tensor) -> torch.Tensor:
        if not self.training or self.layer_drop == 0.0:
            return h
        keep = h.new_empty((h.shape[0],) + (1,) * (h.ndim - 1)).bernoulli_(1.0 - self.layer_drop)
        return h * keep  # no 1/(1-p) rescaling, as in the official code

    def forward(self, x: torch.Tensor, key_mask: Optional[torch.Tensor]) -> torch.Tensor:
        x = x + self._drop_branch(self.dropout(self.attention(self.norm1(x), key_mask)))
        return x + self._drop_branch(self.mlp(self.norm2(x)))


class MUSIQEncoder(nn.Module):
    """Adds spatial (hash) and scale embeddings, prepends [CLS], runs the layers, final LayerNorm."""

    def __init__(self, config: MUSIQConfig):
        super().__init__()
        dim = config.hidden_size
        self.spatial_embedding = nn.Parameter(torch.zeros(config.spatial_grid_size ** 2, dim))
        self.scale_embedding = nn.Parameter(torch.zeros(config.num_scales, dim)) if config.use_scale_embedding else None
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.dropout = nn.Dropout(config.hidden_dropout)
        depth = config.num_hidden_layers
        self.layers = nn.ModuleList(
            MUSIQLayer(config, config.drop_path * i / max(depth - 1, 1)) for i in range(depth)
        )
        self.norm = nn.LayerNorm(dim, eps=config.layer_norm_eps)

    def forward(self, tokens: torch.Tensor, spatial_positions: torch.Tensor, scale_ids: torch.Tensor,
                mask: Optional[torch.Tensor]) -> torch.Tensor:
        x = tokens + self.spatial_embedding[spatial_positions]
        if self.scale_embedding is not None:
            x = x + self.scale_embedding[scale_ids]
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1).to(x.dtype), x], dim=1)
        key_mask = None
        if mask is not None:
            valid = torch.cat([mask.new_ones(mask.shape[0], 1), mask], dim=1)
            key_mask = valid[:, None, None, :]  # (B, 1, 1, 1 + L): True = may be attended to
        x = self.dropout(x)
        for layer in self.layers:
            x = layer(x, key_mask)
        return self.norm(x)


# -- model ------------------------------------------------------------------------------------------------------
_SCORE_LOSSES = {"mse": F.mse_loss, "smooth_l1": F.smooth_l1_loss, "l1": F.l1_loss}


def emd_loss(probabilities: torch.Tensor, target: torch.Tensor, r: float = 2.0) -> torch.Tensor:
    """Earth mover's distance between (B, K) histograms on ordered bins (NIMA's loss, r = 2), mean over the batch.

    ``target`` rows are normalised to sum to one, so vote counts can be passed directly.
    """
    target = target.float()
    totals = target.sum(-1, keepdim=True)
    if bool((totals <= 0).any()):
        raise ValueError("EMD loss: every target distribution needs a positive total")
    cdf_diff = torch.cumsum(probabilities.float(), -1) - torch.cumsum(target / totals, -1)
    per_sample = cdf_diff.abs().pow(r).mean(-1).clamp_min(1e-12).pow(1.0 / r)
    return per_sample.mean()


class MUSIQPreTrainedModel(PreTrainedModel):
    config_class = MUSIQConfig
    base_model_prefix = "musiq"
    main_input_name = "pixel_values"
    supports_gradient_checkpointing = False
    _supports_sdpa = True


    def _init_weights(self, module: nn.Module) -> None:
        # The official initialisers: xavier-uniform Dense kernels in the Transformer, N(0, 0.02) embedding tables,
        # zero [CLS], zero head, zero scale on the last GroupNorm of each bottleneck. transformers only calls this
        # for modules that own parameters (for remote code), so zero-initialised layers carry a flag instead of
        # being handled by their parent; nn.init calls are guarded, so loaded weights are never overwritten.
        zero = getattr(module, ZERO_INIT, False)
        if isinstance(module, nn.Linear):
            (nn.init.zeros_ if zero else nn.init.xavier_uniform_)(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, (nn.LayerNorm, nn.GroupNorm)):
            (nn.init.zeros_ if zero else nn.init.ones_)(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, MUSIQEncoder):
            nn.init.normal_(module.spatial_embedding, std=0.02)
            if module.scale_embedding is not None:
                nn.init.normal_(module.scale_embedding, std=0.02)
            nn.init.zeros_(module.cls_token)


class MUSIQForImageQualityAssessment(MUSIQPreTrainedModel):
    """MUSIQ quality model. ``forward(pixel_values, spatial_positions, scale_ids, attention_mask)`` -> ``score`` (B,)."""
    # save_pretrained writes this code and an auto_map beside the weights (trust_remote_code loading)
    _auto_class = "AutoModel"

    def __init__(self, config: MUSIQConfig):
        super().__init__(config)
        self.stem = MUSIQPatchStem(config)
        self.embedding = nn.Linear(config.stem_features, config.hidden_size)
        self.encoder = MUSIQEncoder(config)
        self.head = nn.Linear(config.hidden_size, config.num_outputs)
        setattr(self.head, ZERO_INIT, True)
        self.post_init()

    def embed_patches(self, pixel_values: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
        """(B, L, 3, P, P) -> (B, L, D) patch tokens; padded patches (mask False) get zeros and skip the stem."""
        b, length = pixel_values.shape[:2]
        if _exporting():
            # A traced graph has symbolic shapes and no data-dependent branches: every patch goes through the
            # stem in one chunk and padded positions are zeroed afterwards. Keys at padded positions are masked
            # in attention, so the scores equal the eager path's.
            tokens = self.embedding(self.stem(pixel_values.flatten(0, 1))).view(b, length, -1)
            return tokens if mask is None else tokens * mask.unsqueeze(-1).to(tokens.dtype)
        dense = mask is None or bool(mask.all())
        patches = pixel_values.flatten(0, 1) if dense else pixel_values[mask]
        if len(patches) == 0:
            return pixel_values.new_zeros(b, length, self.config.hidden_size)
        tokens = torch.cat([self.embedding(self.stem(patches[i:i + STEM_CHUNK]))
                            for i in range(0, len(patches), STEM_CHUNK)])
        if dense:
            return tokens.view(b, length, -1)
        out = tokens.new_zeros(b, length, tokens.shape[-1])
        out[mask] = tokens
        return out

    def _check_inputs(self, pixel_values: torch.Tensor, spatial_positions: Optional[torch.Tensor],
                      scale_ids: Optional[torch.Tensor], attention_mask: Optional[torch.Tensor]) -> None:
        p = self.config.patch_size
        exporting = _exporting()
        if pixel_values.ndim != 5 or tuple(pixel_values.shape[2:]) != (3, p, p):
            raise ValueError(
                f"MUSIQ expects pixel_values of shape (B, L, 3, {p}, {p}) (a sequence of patches), got "
                f"{tuple(pixel_values.shape)}; use MUSIQImageProcessor to cut images into patches"
            )
        if spatial_positions is None or scale_ids is None:
            raise ValueError("MUSIQ needs spatial_positions and scale_ids with pixel_values (B, L each); "
                             "pass every tensor MUSIQImageProcessor returns except crop_to_image")
        expected = tuple(pixel_values.shape[:2])
        for name, tensor in (("spatial_positions", spatial_positions), ("scale_ids", scale_ids),
                             ("attention_mask", attention_mask)):
            if tensor is not None and tuple(tensor.shape) != expected:
                raise ValueError(f"MUSIQ: {name} must have shape {expected} (B, L), got {tuple(tensor.shape)}")
        for name, tensor, size in (("spatial_positions", spatial_positions, self.config.spatial_grid_size ** 2),
                                   ("scale_ids", scale_ids, self.config.num_scales)):
            if not exporting and tensor.numel() and (int(tensor.min()) < 0 or int(tensor.max()) >= size):
                raise ValueError(f"MUSIQ: {name} must lie in [0, {size}) for this config, got values in "
                                 f"[{int(tensor.min())}, {int(tensor.max())}]; does the image processor match "
                                 "the model (spatial_grid_size, number of scales)?")

    def forward_features(self, pixel_values: torch.Tensor, spatial_positions: Optional[torch.Tensor] = None,
                         scale_ids: Optional[torch.Tensor] = None,
                         attention_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """timm-style features: the encoder's normalised output (B, 1 + L, D), the [CLS] token first, then one
        token per patch (padded patches included; the inputs are those of :meth:`forward`)."""
        self._check_inputs(pixel_values, spatial_positions, scale_ids, attention_mask)
        mask = attention_mask.bool() if attention_mask is not None else None
        tokens = self.embed_patches(pixel_values, mask)
        return self.encoder(tokens, spatial_positions.long(), scale_ids.long(), mask)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """timm-style head on :meth:`forward_features`' output: the head's logits (B, num_outputs) from the [CLS]
        token, i.e. the score itself for the score head (before ``config.label_range``), the bin logits for the
        distribution head (``forward`` turns them into the distribution and its mean). ``pre_logits=True``: the
        [CLS] features (B, D)."""
        cls = features[:, 0]
        return cls if pre_logits else self.head(cls)

    def forward(
        self,
        pixel_values: torch.Tensor,
        spatial_positions: Optional[torch.Tensor] = None,
        scale_ids: Optional[torch.Tensor] = None,
        attention_mask: Optional[torch.Tensor] = None,
        labels: Optional[torch.Tensor] = None,
        return_dict: Optional[bool] = None,
        **kwargs,
    ) -> MUSIQOutput | tuple:
        """Score a batch of patch sequences.

        Args:
            pixel_values: (B, L, 3, P, P) normalised patches.
            spatial_positions: (B, L) int, hash cell ``row * G + col`` of each patch.
            scale_ids: (B, L) int, scale index of each patch.
            attention_mask: (B, L), 1 for real patches and 0 for padding (all real when omitted).
            labels: (B,) target scores for the score head, (B, num_bins) histograms for the distribution head.
        """
        logits = self.forward_head(self.forward_features(pixel_values, spatial_positions, scale_ids, attention_mask))

        distribution = None
        if self.config.head == "distribution":
            distribution = logits.float().softmax(-1).to(logits.dtype)
            bins = torch.arange(1, self.config.num_bins + 1, device=logits.device, dtype=distribution.dtype)
            score = (distribution * bins).sum(-1)
        else:
            score = logits[:, 0]

        loss = None
        if labels is not None:
            if self.config.head == "distribution":
                if labels.ndim != 2 or labels.shape[-1] != self.config.num_bins:
                    raise ValueError(f"MUSIQ distribution head: labels must be (B, {self.config.num_bins}) "
                                     f"histograms, got shape {tuple(labels.shape)}")
                loss = emd_loss(distribution, labels)
            else:
                loss = _SCORE_LOSSES[self.config.loss_type](score.float(), labels.float().view_as(score))

        score = to_label_units(score, getattr(self.config, "label_range", None))
        output = MUSIQOutput(loss=loss, score=score, logits=logits, distribution=distribution)
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        return output if return_dict else output.to_tuple()
