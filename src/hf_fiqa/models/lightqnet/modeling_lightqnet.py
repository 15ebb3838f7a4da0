"""LightQNet (Chen et al., IEEE SPL 2021) as a transformers model: aligned 96x96 face -> quality in [0, 1].

A MobileNetV3-style trunk with ReLU and 3x3 depthwise convolutions, global average pooling and one sigmoid unit
(the "uncertainty module" of the release, whose output ``confidence_st`` is the quality). Convolutions pad like
TensorFlow's ``SAME`` so that the converted weights give the released graph's numbers.

Copied next to saved weights for ``trust_remote_code=True`` loading: imports only ``torch``, ``transformers`` and
its sibling configuration file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from .configuration_lightqnet import LightQNetConfig


@dataclass
class LightQNetOutput(ModelOutput):
    """``score``: (B,) quality in [0, 1] (the sigmoid), higher is better; ``logits``: (B,) before the sigmoid."""

    score: torch.Tensor | None = None
    logits: torch.Tensor | None = None


class SameConvBN(nn.Module):
    """Bias-free convolution with TensorFlow ``SAME`` padding, BatchNorm, optional ReLU."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1, relu: bool = True,
                 eps: float = 2e-5):
        super().__init__()
        self.kernel, self.stride = kernel, stride
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride=stride, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_ch, eps=eps)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kernel > 1:
            pads = []
            for size in (x.shape[-1], x.shape[-2]):  # F.pad order: last dim first
                total = max((math.ceil(size / self.stride) - 1) * self.stride + self.kernel - size, 0)
                pads += [total // 2, total - total // 2]
            x = F.pad(x, pads)
        x = self.bn(self.conv(x))
        return F.relu(x) if self.relu else x


class InvertedResidual(nn.Module):
    def __init__(self, in_ch: int, expand: int, out_ch: int, stride: int, eps: float):
        super().__init__()
        hidden = expand or in_ch
        self.expand = SameConvBN(in_ch, hidden, 1, eps=eps) if expand else None
        self.depthwise = SameConvBN(hidden, hidden, 3, stride=stride, groups=hidden, eps=eps)
        self.project = SameConvBN(hidden, out_ch, 1, relu=False, eps=eps)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.expand(x) if self.expand is not None else x
        out = self.project(self.depthwise(out))
        return x + out if self.residual else out


class LightQNetPreTrainedModel(PreTrainedModel):
    config_class = LightQNetConfig
    base_model_prefix = "lightqnet"
    main_input_name = "pixel_values"

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.01)
            nn.init.zeros_(module.bias)


class LightQNetModel(LightQNetPreTrainedModel):
    """Aligned face crops ``(B, 3, 96, 96)`` (BGR, ``(x - 128) / 128``: the image processor's job) -> quality."""

    _auto_class = "AutoModel"

    def __init__(self, config: LightQNetConfig):
        super().__init__(config)
        eps = config.bn_eps
        self.stem = SameConvBN(config.num_channels, config.stem_width, 3, eps=eps)
        blocks, width = [], config.stem_width
        for expand, out, stride in config.blocks:
            blocks.append(InvertedResidual(width, expand, out, stride, eps))
            width = out
        self.blocks = nn.Sequential(*blocks)
        self.head = SameConvBN(width, config.head_width, 1, eps=eps)
        self.fc = nn.Linear(config.head_width, 1)
        self.post_init()

    def forward(self, pixel_values: torch.Tensor, return_dict: bool | None = None, **kwargs: Any):
        size = self.config.image_size
        if pixel_values.ndim != 4 or tuple(pixel_values.shape[-2:]) != (size, size):
            raise ValueError(f"pixel_values must be (B, {self.config.num_channels}, {size}, {size}), "
                             f"got {tuple(pixel_values.shape)}")
        x = self.head(self.blocks(self.stem(pixel_values)))
        logits = self.fc(x.mean(dim=(2, 3)))[:, 0]
        output = LightQNetOutput(score=torch.sigmoid(logits), logits=logits)
        return_dict = return_dict if return_dict is not None else getattr(self.config, "return_dict", True)
        return output if return_dict else output.to_tuple()
