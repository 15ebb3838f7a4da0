"""iResNet face embedder (ArcFace's ``arcface_torch`` backbone, also MagFace's) as a transformers model.

Module names follow insightface's ``arcface_torch`` layout (``conv1``, ``bn1``, ``prelu``,
``layer1.0.bn1`` ... ``bn2``, ``fc``, ``features``) so released checkpoints map onto this model by
stripping wrapper prefixes only (see ``convert_iresnet.py``).

This file is copied next to saved weights for ``trust_remote_code=True`` loading, so it imports
only ``torch``, ``transformers`` and its sibling ``configuration_iresnet``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from .configuration_iresnet import IResNetConfig


@dataclass
class IResNetOutput(ModelOutput):
    """Output of :class:`IResNetModel`.

    Args:
        loss: margin-head loss, present when ``labels`` and a ``margin_head`` were passed.
        logits: the margin head's class logits (without margin), present with a ``margin_head``.
        embeddings: ``(B, embedding_size)`` raw embeddings, NOT L2-normalised: their length is
            MagFace's quality signal, so normalising is left to the caller.
        norms: ``(B,)`` L2 norm of each embedding.
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    embeddings: torch.Tensor | None = None
    norms: torch.Tensor | None = None


def _conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


class IBasicBlock(nn.Module):
    """Pre-activation-style residual block: BN-conv3x3-BN-PReLU-conv3x3(stride)-BN, plus shortcut.

    The stride sits on the second convolution (unlike torchvision's BasicBlock); that is what
    the released weights were trained with.
    """

    def __init__(self, in_channels: int, channels: int, stride: int, eps: float):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels, eps=eps)
        self.conv1 = _conv3x3(in_channels, channels)
        self.bn2 = nn.BatchNorm2d(channels, eps=eps)
        self.prelu = nn.PReLU(channels)
        self.conv2 = _conv3x3(channels, channels, stride)
        self.bn3 = nn.BatchNorm2d(channels, eps=eps)
        self.downsample: nn.Sequential | None = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, channels, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(channels, eps=eps),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        shortcut = x if self.downsample is None else self.downsample(x)
        return out + shortcut


class IResNetPreTrainedModel(PreTrainedModel):
    config_class = IResNetConfig
    base_model_prefix = "iresnet"
    main_input_name = "pixel_values"
    _no_split_modules = ["IBasicBlock"]

    def _init_weights(self, module: nn.Module) -> None:
        """Initialise a fresh (untrained) network the way recognition backbones are trained from scratch.

        Uses ``torch.nn.init`` so that transformers 5's init guards skip tensors loaded from a
        checkpoint.
        """
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            # torch's own default for Linear (kaiming-uniform with a = sqrt(5)); insightface keeps it.
            nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5))
            if module.bias is not None:
                bound = 1.0 / math.sqrt(module.in_features)
                nn.init.uniform_(module.bias, -bound, bound)
        elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
            if module.running_mean is not None:
                nn.init.zeros_(module.running_mean)
                nn.init.ones_(module.running_var)
                nn.init.zeros_(module.num_batches_tracked)
        elif isinstance(module, nn.PReLU):
            nn.init.constant_(module.weight, 0.25)


def _apply_margin_head(
    embeddings: torch.Tensor,
    labels: torch.Tensor | None,
    margin_head: Callable[..., Any] | None,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Run an optional training head; it owns the class weights, so it is passed in, not stored."""
    if margin_head is None:
        return None, None
    head_out = margin_head(embeddings, labels)
    return getattr(head_out, "loss", None), getattr(head_out, "logits", None)


class IResNetModel(IResNetPreTrainedModel):
    """iResNet-18/34/50/100/200 mapping an aligned face to a raw (unnormalised) embedding.

    stem: conv3x3(3 -> stem_width) + BN + PReLU at full resolution; 4 stages of IBasicBlocks,
    each starting with stride 2; head: BN2d -> dropout -> Linear(widths[3] * 7 * 7 -> 512) -> BN1d.
    """
    # save_pretrained writes this code and an auto_map beside the weights (trust_remote_code loading)
    _auto_class = "AutoModel"

    def __init__(self, config: IResNetConfig):
        super().__init__(config)
        eps = config.bn_eps
        self.conv1 = nn.Conv2d(config.num_channels, config.stem_width, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(config.stem_width, eps=eps)
        self.prelu = nn.PReLU(config.stem_width)
        in_channels = config.stem_width
        for index, (blocks, width) in enumerate(zip(config.layers, config.widths), start=1):
            stage = [IBasicBlock(in_channels, width, 2, eps)]
            stage += [IBasicBlock(width, width, 1, eps) for _ in range(blocks - 1)]
            self.add_module(f"layer{index}", nn.Sequential(*stage))
            in_channels = width
        self.bn2 = nn.BatchNorm2d(in_channels, eps=eps)
        self.dropout = nn.Dropout(p=config.dropout)
        self.fc = nn.Linear(in_channels * config.feature_map_size**2, config.embedding_size)
        self.features = nn.BatchNorm1d(config.embedding_size, eps=eps)
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        margin_head: Callable[..., Any] | None = None,
        return_dict: bool | None = None,
        **kwargs: Any,
    ) -> IResNetOutput | tuple:
        """Embed ``pixel_values`` ``(B, 3, S, S)`` normalised by the image processor (``IResNetImageProcessor``).

        ``margin_head`` (an ``ArcFaceHead``/``MagFaceHead`` or any callable ``(embeddings, labels)``
        returning an object with ``loss`` and ``logits``) adds training outputs.
        """
        if labels is not None and margin_head is None:
            raise ValueError("labels were given but no margin_head: pass e.g. ArcFaceHead/MagFaceHead to compute a loss")
        size = self.config.image_size
        if pixel_values.ndim != 4 or pixel_values.shape[-2:] != (size, size):
            raise ValueError(f"pixel_values must be (B, {self.config.num_channels}, {size}, {size}), got {tuple(pixel_values.shape)}")
        # NCHW-contiguous: images permuted from HWC arrive channels-last, and on CPU (torch 2.15)
        # the backward of a strided 1x1 convolution on channels-last input crashes the process.
        pixel_values = pixel_values.contiguous()
        x = self.prelu(self.bn1(self.conv1(pixel_values)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.dropout(torch.flatten(self.bn2(x), 1))
        embeddings = self.features(self.fc(x))
        norms = torch.linalg.vector_norm(embeddings, dim=1)
        loss, logits = _apply_margin_head(embeddings, labels, margin_head)
        return_dict = return_dict if return_dict is not None else getattr(self.config, "return_dict", True)
        output = IResNetOutput(loss=loss, logits=logits, embeddings=embeddings, norms=norms)
        return output if return_dict else output.to_tuple()
