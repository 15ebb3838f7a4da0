"""MediaPipe's 468-point face mesh (``face_landmark.tflite``, Apache-2.0) as a transformers model.

The released TFLite graph (``mediapipe==0.10.14``, ``mediapipe/modules/face_landmark/``) is a
BlazeFace-style network; here it is rebuilt from plain ``torch.nn`` layers (shapes for the
default 192x192 crop)::

    conv 3x3/2 16 + PReLU                                     96x96
    stage 0: 2 blocks, 16                                     96x96
    stage 1: block/2 32, 2 blocks                             48x48
    stage 2: block/2 64, 2 blocks                             24x24
    stage 3: block/2 128, 2 blocks                            12x12
    stage 4: block/2 128, 2 blocks                             6x6   <- forward_features
    landmark head: block/2 128, 2 blocks, 1x1 32 + PReLU, block 32, conv 3x3 -> 1404 = 468 x (x, y, z)
    presence head: block/2 128, 1x1 32 + PReLU, block 32, conv 3x3 -> 1 logit

where a block is ``depthwise 3x3 (+bias) -> pointwise 1x1 (+bias) -> + shortcut -> PReLU``. A
stride-2 block pads its input like TensorFlow's ``SAME`` (one row and column after, none before)
and its shortcut is a 2x2/2 max-pool, zero-padded in channels when the block widens. Every layer
has a bias; there is no normalisation layer.

Input: ``pixel_values`` ``(B, 3, 192, 192)``, RGB in [0, 1] (MediaPipe's ``ImageToTensorCalculator``
with ``output_tensor_float_range {min: 0 max: 1}``), a crop cut as ``image_processing_face_mesh.py``
describes. Output: ``(x, y, z)`` per landmark in pixels of that crop, in MediaPipe's convention
(the crop spans [0, 192], so ``x / 192`` is MediaPipe's normalised coordinate; ``z`` is a
relative depth on the scale of ``x``, smaller nearer the camera), and the face-presence logit.

This file is copied next to saved weights for ``trust_remote_code=True`` loading, so it imports
only ``torch``, ``transformers`` and its sibling ``configuration_face_mesh``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from .configuration_face_mesh import FaceMeshConfig


@dataclass
class FaceMeshOutput(ModelOutput):
    """Output of :class:`FaceMeshModel`.

    Args:
        landmarks: ``(B, num_landmarks, 3)`` float32 ``(x, y, z)`` in pixels of the input crop.
        presence_logits: ``(B,)`` the face-presence logit.
        presence_scores: ``(B,)`` ``sigmoid(presence_logits)``, MediaPipe's face presence score.
    """

    landmarks: torch.Tensor | None = None
    presence_logits: torch.Tensor | None = None
    presence_scores: torch.Tensor | None = None


def pad_same_stride2(x: torch.Tensor) -> torch.Tensor:
    """TensorFlow ``SAME`` padding of a 3x3 stride-2 window on an even-sized map: one zero row and column after."""
    return F.pad(x, (0, 1, 0, 1))


def max_pool_2x2(x: torch.Tensor) -> torch.Tensor:
    """``F.max_pool2d(x, 2, 2)`` on an even-sized map, as the maximum of the four strided slices.

    The same values, 5x faster on CPU (torch 2.14, one thread): the pooling kernel computes indices
    even under ``inference_mode`` and took a fifth of the network's time.
    """
    return torch.maximum(torch.maximum(x[..., ::2, ::2], x[..., ::2, 1::2]),
                         torch.maximum(x[..., 1::2, ::2], x[..., 1::2, 1::2]))


class FaceMeshStem(nn.Module):
    """``conv 3x3/2`` (TF ``SAME``) + PReLU."""

    def __init__(self, in_channels: int, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, channels, kernel_size=3, stride=2, padding=0)
        self.act = nn.PReLU(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(pad_same_stride2(x)))


class FaceMeshBlock(nn.Module):
    """``depthwise 3x3 -> pointwise 1x1 -> + shortcut -> PReLU``.

    ``stride=2``: TF ``SAME`` padding before the depthwise convolution, and a 2x2/2 max-pooled
    shortcut, zero-padded with ``out_channels - in_channels`` channels at the end. A stride-1 block
    keeps the width.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        if out_channels < in_channels or (stride == 1 and out_channels != in_channels):
            raise ValueError(f"a stride-{stride} block cannot go from {in_channels} to {out_channels} channels")
        self.stride = stride
        self.extra_channels = out_channels - in_channels
        self.depthwise = nn.Conv2d(in_channels, in_channels, kernel_size=3, stride=stride,
                                   padding=1 if stride == 1 else 0, groups=in_channels)
        self.pointwise = nn.Conv2d(in_channels, out_channels, kernel_size=1)
        self.act = nn.PReLU(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 2:
            out = self.depthwise(pad_same_stride2(x))
            shortcut = max_pool_2x2(x)
        else:
            out = self.depthwise(x)
            shortcut = x
        if self.extra_channels:
            shortcut = F.pad(shortcut, (0, 0, 0, 0, 0, self.extra_channels))
        return self.act(self.pointwise(out) + shortcut)


class FaceMeshHead(nn.Module):
    """Stride-2 block and more blocks at the input width, a 1x1 reduction + PReLU, blocks, and a
    convolution covering the whole remaining map (``map_size`` x ``map_size``) to ``out_features``."""

    def __init__(self, in_channels: int, width: int, blocks: Sequence[int], out_features: int, map_size: int):
        super().__init__()
        before, after = blocks
        self.blocks = nn.Sequential(
            FaceMeshBlock(in_channels, in_channels, stride=2),
            *[FaceMeshBlock(in_channels, in_channels) for _ in range(before - 1)],
        )
        self.reduce = nn.Conv2d(in_channels, width, kernel_size=1)
        self.reduce_act = nn.PReLU(width)
        self.refine = nn.Sequential(*[FaceMeshBlock(width, width) for _ in range(after)])
        self.out = nn.Conv2d(width, out_features, kernel_size=map_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.refine(self.reduce_act(self.reduce(self.blocks(x))))
        return torch.flatten(self.out(x), 1)


class FaceMeshPreTrainedModel(PreTrainedModel):
    config_class = FaceMeshConfig
    base_model_prefix = "face_mesh"
    main_input_name = "pixel_values"
    _no_split_modules = ["FaceMeshBlock"]

    def _init_weights(self, module: nn.Module) -> None:
        """Initialise a fresh (untrained) network; converted weights replace all of it.

        Uses ``torch.nn.init`` so that transformers 5's init guards skip tensors loaded from a
        checkpoint.
        """
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="leaky_relu", a=0.25)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.PReLU):
            nn.init.constant_(module.weight, 0.25)


class FaceMeshModel(FaceMeshPreTrainedModel):
    """Face crop -> ``num_landmarks`` (x, y, z) points in crop pixels and a face-presence logit.

    timm's split: :meth:`forward_features` (backbone map) and :meth:`forward_head` (both heads).
    """
    # save_pretrained writes this code and an auto_map beside the weights (trust_remote_code loading)
    _auto_class = "AutoModel"

    def __init__(self, config: FaceMeshConfig):
        super().__init__(config)
        widths = config.stage_widths
        self.stem = FaceMeshStem(config.num_channels, widths[0])
        stages, in_channels = [], widths[0]
        for index, (width, count) in enumerate(zip(widths, config.stage_blocks)):
            blocks = []
            for position in range(count):
                blocks.append(FaceMeshBlock(in_channels, width, stride=2 if index > 0 and position == 0 else 1))
                in_channels = width
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.num_features = widths[-1]
        map_size = config.head_map_size
        self.landmark_head = FaceMeshHead(widths[-1], config.head_width, config.landmark_head_blocks,
                                          3 * config.num_landmarks, map_size)
        self.presence_head = FaceMeshHead(widths[-1], config.head_width, config.presence_head_blocks, 1, map_size)
        self.post_init()

    def forward_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``(B, 3, S, S)`` crops in [0, 1] -> the backbone map ``(B, stage_widths[-1], S / 2**len(stage_widths))``."""
        size, channels = self.config.image_size, self.config.num_channels
        if pixel_values.ndim != 4 or tuple(pixel_values.shape[1:]) != (channels, size, size):
            raise ValueError(f"pixel_values must be (B, {channels}, {size}, {size}), got {tuple(pixel_values.shape)}")
        if not (pixel_values.is_contiguous() or pixel_values.is_contiguous(memory_format=torch.channels_last)):
            pixel_values = pixel_values.contiguous()  # e.g. permuted from HWC; channels-last input stays so (faster)
        x = self.stem(pixel_values)
        for stage in self.stages:
            x = stage(x)
        return x

    def forward_head(self, features: torch.Tensor, return_dict: bool | None = None) -> FaceMeshOutput | tuple:
        """Backbone map -> :class:`FaceMeshOutput` (landmarks in crop pixels, presence logit and score)."""
        landmarks = self.landmark_head(features).reshape(features.shape[0], self.config.num_landmarks, 3)
        logits = self.presence_head(features)[:, 0]
        output = FaceMeshOutput(landmarks=landmarks, presence_logits=logits, presence_scores=torch.sigmoid(logits))
        return_dict = return_dict if return_dict is not None else getattr(self.config, "return_dict", True)
        return output if return_dict else output.to_tuple()

    def forward(self, pixel_values: torch.Tensor, return_dict: bool | None = None, **kwargs: Any) -> FaceMeshOutput | tuple:
        """Landmarks and face presence for ``pixel_values`` ``(B, 3, S, S)``, RGB in [0, 1]
        (``FaceMeshImageProcessor``)."""
        return self.forward_head(self.forward_features(pixel_values), return_dict=return_dict)


__all__ = ["FaceMeshBlock", "FaceMeshHead", "FaceMeshModel", "FaceMeshOutput", "FaceMeshPreTrainedModel",
           "FaceMeshStem", "max_pool_2x2", "pad_same_stride2"]
