"""The official MUSIQ forward pass in plain numpy, on parameters in the official (flax ``.npz``) layout.

Written from the official JAX code (google-research/musiq ``multiscale_transformer.py``,
``multiscale_transformer_utils.py``, ``resnet.py``) and flax.nn's layer definitions, NHWC throughout, float64.
It exists to check :mod:`convert_musiq` and the PyTorch model against the official structure without JAX: tests
build random parameters under the official key names and shapes, and compare this function with the converted
model. It is slow and not used for inference.

Parameter keys (without the ``opt/target/`` prefix of the released files):

- ``conv_root/kernel`` (7, 7, 3, 64) HWIO; ``gn_root/{scale,bias}`` (1, 1, 1, 64);
- ``block{i}/unit{j}/{conv1,conv2,conv3,conv_proj}/kernel``, ``.../{gn1,gn2,gn3,gn_proj}/{scale,bias}``;
- ``embedding/{kernel,bias}`` (stem features, D), (D,);
- ``Transformer/posembed_input/pos_embedding`` (1, G*G, D); ``Transformer/scaleembed_input/scale_embedding``
  (1, S, D); ``Transformer/cls`` (1, 1, D);
- ``Transformer/encoderblock_{k}/LayerNorm_0``, ``.../MultiHeadDotProductAttention_1/{query,key,value}/kernel``
  (D, H, D/H) + bias (H, D/H), ``.../out/kernel`` (H, D/H, D) + bias (D,), ``.../LayerNorm_2``,
  ``.../MlpBlock_3/Dense_0`` and ``Dense_1``; ``Transformer/encoder_norm``; ``head/{kernel,bias}``.
"""

from __future__ import annotations

import math
import re
from typing import Mapping

import numpy as np


def _same(size: int, kernel: int, stride: int) -> tuple[int, int]:
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _windows(x: np.ndarray, kernel: int, stride: int, fill: float) -> np.ndarray:
    """(N, H, W, C) -> (N, Ho, Wo, C, k, k) SAME-padded sliding windows."""
    pad_h, pad_w = _same(x.shape[1], kernel, stride), _same(x.shape[2], kernel, stride)
    x = np.pad(x, ((0, 0), pad_h, pad_w, (0, 0)), constant_values=fill)
    view = np.lib.stride_tricks.sliding_window_view(x, (kernel, kernel), axis=(1, 2))
    return view[:, ::stride, ::stride]


def std_conv(x: np.ndarray, kernel: np.ndarray, stride: int) -> np.ndarray:
    w = kernel - kernel.mean(axis=(0, 1, 2))
    w = w / (w.std(axis=(0, 1, 2)) + 1e-5)
    return np.einsum("nhwcij,ijco->nhwo", _windows(x, kernel.shape[0], stride, 0.0), w)


def group_norm(x: np.ndarray, scale: np.ndarray, bias: np.ndarray, eps: float, groups: int = 32) -> np.ndarray:
    n, h, w, c = x.shape
    g = x.reshape(n, h, w, groups, c // groups)
    mean = g.mean(axis=(1, 2, 4), keepdims=True)
    var = (g ** 2).mean(axis=(1, 2, 4), keepdims=True) - mean ** 2
    return ((g - mean) / np.sqrt(var + eps)).reshape(x.shape) * scale.reshape(-1) + bias.reshape(-1)


def layer_norm(x: np.ndarray, p: Mapping[str, np.ndarray], prefix: str, eps: float = 1e-6) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = (x ** 2).mean(-1, keepdims=True) - mean ** 2
    return (x - mean) / np.sqrt(var + eps) * p[f"{prefix}/scale"] + p[f"{prefix}/bias"]


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


def _gelu_tanh(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def stem(p: Mapping[str, np.ndarray], x: np.ndarray, groups: int = 32) -> np.ndarray:
    """(N, P, P, 3) -> (N, P/4 * P/4 * C) flattened in HWC order."""
    x = _relu(group_norm(std_conv(x, p["conv_root/kernel"], 2), p["gn_root/scale"], p["gn_root/bias"], 1e-6, groups))
    x = _windows(x, 3, 2, -np.inf).max(axis=(-2, -1))
    blocks = sorted({int(m.group(1)) for k in p if (m := re.match(r"block(\d+)/", k))})
    for i in blocks:
        units = sorted({int(m.group(1)) for k in p if (m := re.match(rf"block{i}/unit(\d+)/", k))})
        for j in units:
            u = f"block{i}/unit{j}"
            stride = 2 if (i > 1 and j == 1) else 1
            residual = x
            if f"{u}/conv_proj/kernel" in p:
                residual = group_norm(std_conv(x, p[f"{u}/conv_proj/kernel"], stride),
                                      p[f"{u}/gn_proj/scale"], p[f"{u}/gn_proj/bias"], 1e-4, groups)
            y = _relu(group_norm(std_conv(x, p[f"{u}/conv1/kernel"], 1), p[f"{u}/gn1/scale"], p[f"{u}/gn1/bias"], 1e-4, groups))
            y = _relu(group_norm(std_conv(y, p[f"{u}/conv2/kernel"], stride), p[f"{u}/gn2/scale"], p[f"{u}/gn2/bias"], 1e-4, groups))
            y = group_norm(std_conv(y, p[f"{u}/conv3/kernel"], 1), p[f"{u}/gn3/scale"], p[f"{u}/gn3/bias"], 1e-4, groups)
            x = _relu(residual + y)
    return x.reshape(x.shape[0], -1)


def attention(p: Mapping[str, np.ndarray], prefix: str, x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """flax.nn SelfAttention with padding_mask: masked pairs get a -1e10 bias."""
    q = np.einsum("bld,dhk->blhk", x, p[f"{prefix}/query/kernel"]) + p[f"{prefix}/query/bias"]
    k = np.einsum("bld,dhk->blhk", x, p[f"{prefix}/key/kernel"]) + p[f"{prefix}/key/bias"]
    v = np.einsum("bld,dhk->blhk", x, p[f"{prefix}/value/kernel"]) + p[f"{prefix}/value/bias"]
    q = q / np.sqrt(q.shape[-1])
    logits = np.einsum("bqhk,bphk->bhqp", q, k)
    pair = valid[:, None, :, None] & valid[:, None, None, :]
    logits = logits + np.where(pair, 0.0, -1e10)
    logits = logits - logits.max(-1, keepdims=True)
    weights = np.exp(logits)
    weights /= weights.sum(-1, keepdims=True)
    y = np.einsum("bhqp,bphk->bqhk", weights, v)
    return np.einsum("blhk,hkd->bld", y, p[f"{prefix}/out/kernel"]) + p[f"{prefix}/out/bias"]


def reference_forward(p: Mapping[str, np.ndarray], patches: np.ndarray, spatial: np.ndarray, scale: np.ndarray,
                      mask: np.ndarray, stem_groups: int = 32) -> np.ndarray:
    """Official MUSIQ logits (B, num_classes) for patches (B, L, P, P, 3) NHWC and (B, L) annotations."""
    p = {k: np.asarray(v, dtype=np.float64) for k, v in p.items()}
    b, length = patches.shape[:2]
    x = stem(p, patches.reshape((b * length,) + patches.shape[2:]).astype(np.float64), stem_groups)
    x = x.reshape(b, length, -1) @ p["embedding/kernel"] + p["embedding/bias"]
    x = x + p["Transformer/posembed_input/pos_embedding"][0][spatial]
    if "Transformer/scaleembed_input/scale_embedding" in p:
        x = x + p["Transformer/scaleembed_input/scale_embedding"][0][scale]
    cls = np.broadcast_to(p["Transformer/cls"], (b, 1, x.shape[-1]))
    x = np.concatenate([cls, x], axis=1)
    valid = np.concatenate([np.ones((b, 1), dtype=bool), mask.astype(bool)], axis=1)
    layers = sorted({int(m.group(1)) for k in p if (m := re.match(r"Transformer/encoderblock_(\d+)/", k))})
    for i in layers:
        e = f"Transformer/encoderblock_{i}"
        x = x + attention(p, f"{e}/MultiHeadDotProductAttention_1", layer_norm(x, p, f"{e}/LayerNorm_0"), valid)
        y = layer_norm(x, p, f"{e}/LayerNorm_2")
        y = _gelu_tanh(y @ p[f"{e}/MlpBlock_3/Dense_0/kernel"] + p[f"{e}/MlpBlock_3/Dense_0/bias"])
        x = x + y @ p[f"{e}/MlpBlock_3/Dense_1/kernel"] + p[f"{e}/MlpBlock_3/Dense_1/bias"]
    x = layer_norm(x, p, "Transformer/encoder_norm")
    return x[:, 0] @ p["head/kernel"] + p["head/bias"]
