"""dlib's ResNet face recognizer (``dlib_face_recognition_resnet_model_v1``) as a transformers model.

The network is the one defined in dlib's ``examples/dnn_face_recognition_ex.cpp``, rebuilt from
plain ``torch.nn`` layers so it runs on any torch backend and batch size:

* stem: ``conv 7x7/2 (no padding) -> affine -> relu -> max-pool 3x3/2 (no padding)``;
* five stages of residual blocks ``conv 3x3 -> affine -> relu -> conv 3x3 -> affine (+ shortcut) -> relu``.
  A downsampling block has a stride-2, *unpadded* first convolution and a 2x2/2 average-pooled
  shortcut. When the two branches differ in size (channels, or 3x3 against 4x4 in the fourth
  stage), dlib's ``add_prev`` adds them as if the smaller were zero-padded at the end of each
  dimension; :func:`add_zero_padded` does exactly that;
* head: global average pool and a bias-free linear map to 128 dimensions.

dlib's ``affine`` layers are frozen batch norms (a per-channel scale and shift straight after a
convolution). The converter folds each into the convolution before it, so every convolution
here has a bias and there is no normalisation layer left to run: the fastest form on CPU, and
the same function up to float rounding.

Pixel normalisation (``(x - mean) / 256`` per channel, dlib's ``input_rgb_image_sized``) lives in
:class:`DlibResNetImageProcessor`, not here: the model takes ``pixel_values``.

This file is copied next to saved weights for ``trust_remote_code=True`` loading, so it imports
only ``torch``, ``transformers`` and its sibling ``configuration_dlib_resnet``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import BackboneOutput
from transformers.utils import ModelOutput

try:  # transformers >= 5.x keeps it here; earlier 5.x releases under utils
    from transformers.backbone_utils import BackboneMixin
except ImportError:  # pragma: no cover
    from transformers.utils.backbone_utils import BackboneMixin

from .configuration_dlib_resnet import DlibResNetConfig


@dataclass
class DlibResNetOutput(ModelOutput):
    """Output of :class:`DlibResNetModel`.

    Args:
        embeddings: ``(B, embedding_size)`` float32 descriptors exactly as dlib returns them (not
            L2-normalised; dlib compares them by Euclidean distance, threshold
            ``config.distance_threshold``). Always float32, also under bf16 autocast, so that
            downstream distances do not inherit bf16's 3-digit precision.
        norms: ``(B,)`` L2 norm of each descriptor.
    """

    embeddings: torch.Tensor | None = None
    norms: torch.Tensor | None = None


def add_zero_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a + b`` where a smaller tensor counts as zero-padded at the end of each dimension.

    This is dlib's ``add_prev`` rule (``tt::add`` with mismatched shapes): channels a
    downsampling shortcut lacks are zero, and where a 3x3 convolution output meets a 4x4 pooled
    shortcut, the extra last row and column carry only the shortcut.
    """
    if a.shape == b.shape:
        return a + b
    target = [max(x, y) for x, y in zip(a.shape, b.shape)]

    def grow(t: torch.Tensor) -> torch.Tensor:
        if list(t.shape) == target:
            return t
        # F.pad lists the last dimension first: (W_left, W_right, H_left, H_right, C_left, C_right).
        pads = [0, target[3] - t.shape[3], 0, target[2] - t.shape[2], 0, target[1] - t.shape[1]]
        return F.pad(t, pads)

    return grow(a) + grow(b)


class DlibResidualBlock(nn.Module):
    """One dlib residual block (``ares`` or ``ares_down``), affines folded into the convolutions.

    ``downsample``: dlib's ``ares_down``; the first convolution has stride 2 and no padding (dlib
    pads only stride-1 convolutions), and the shortcut is a 2x2/2 average pool of the input.
    """

    def __init__(self, in_channels: int, channels: int, downsample: bool):
        super().__init__()
        stride, padding = (2, 0) if downsample else (1, 1)
        self.conv1 = nn.Conv2d(in_channels, channels, kernel_size=3, stride=stride, padding=padding, bias=True)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, stride=1, padding=1, bias=True)
        self.downsample = bool(downsample)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(F.relu(self.conv1(x), inplace=True))
        shortcut = F.avg_pool2d(x, kernel_size=2, stride=2) if self.downsample else x
        return F.relu(add_zero_padded(out, shortcut), inplace=True)


class DlibStage(nn.Module):
    """A run of residual blocks at one width; the first downsamples in every stage but the first."""

    def __init__(self, in_channels: int, channels: int, num_blocks: int, downsample: bool):
        super().__init__()
        blocks = [DlibResidualBlock(in_channels, channels, downsample)]
        blocks += [DlibResidualBlock(channels, channels, False) for _ in range(num_blocks - 1)]
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x


class DlibStem(nn.Module):
    """``conv 7x7/2`` (unpadded, affine folded in) ``-> relu -> max-pool 3x3/2`` (unpadded)."""

    def __init__(self, in_channels: int, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, channels, kernel_size=7, stride=2, padding=0, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(F.relu(self.conv(x), inplace=True), kernel_size=3, stride=2)


def _build_trunk(module: nn.Module, config: DlibResNetConfig) -> None:
    """``stem`` and ``stages`` on ``module``: the layers the descriptor model and the backbone share, under the
    same names, so one checkpoint loads into either."""
    module.stem = DlibStem(config.num_channels, config.stem_width)
    stages = []
    in_channels = config.stem_width
    for index, (width, blocks) in enumerate(zip(config.stage_widths, config.stage_blocks)):
        stages.append(DlibStage(in_channels, width, blocks, downsample=index > 0))
        in_channels = width
    module.stages = nn.ModuleList(stages)


def _check_pixels(module: nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
    """``pixel_values`` checked against the config and brought to the weights' memory format (channels-last after
    ``model.to(memory_format=torch.channels_last)``), so callers need not match it."""
    config = module.config
    size = config.image_size
    if pixel_values.ndim != 4 or tuple(pixel_values.shape[1:]) != (config.num_channels, size, size):
        raise ValueError(
            f"pixel_values must be (B, {config.num_channels}, {size}, {size}) as DlibResNetImageProcessor "
            f"makes them, got {tuple(pixel_values.shape)}"
        )
    weight = module.stem.conv.weight
    if weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous():
        return pixel_values.contiguous(memory_format=torch.channels_last)
    return pixel_values.contiguous()


class DlibResNetPreTrainedModel(PreTrainedModel):
    config_class = DlibResNetConfig
    base_model_prefix = "dlib_resnet"
    main_input_name = "pixel_values"
    _no_split_modules = ["DlibResidualBlock"]

    def _init_weights(self, module: nn.Module) -> None:
        """He initialisation for a fresh (untrained) network, through ``torch.nn.init``.

        Only tiny test models and from-scratch training start here; released weights come
        from the converter. Using ``torch.nn.init`` lets transformers skip tensors it loads.
        """
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5))
            if module.bias is not None:
                nn.init.zeros_(module.bias)


class DlibResNetModel(DlibResNetPreTrainedModel):
    """Map a dlib-normalised 150x150 face chip to dlib's 128-d face descriptor.

    Modules: ``stem``, ``stages[i].blocks[j].conv1/conv2``, ``fc``. For CPU inference,
    :meth:`embed` batches, switches to channels-last and optionally runs in bfloat16.
    """
    # save_pretrained writes this code and an auto_map beside the weights (trust_remote_code loading)
    _auto_class = "AutoModel"

    def __init__(self, config: DlibResNetConfig):
        super().__init__(config)
        _build_trunk(self, config)
        self.fc = nn.Linear(config.stage_widths[-1], config.embedding_size, bias=False)
        self.post_init()

    @property
    def trunk_output(self) -> str:
        """The backbone map :meth:`embedding_from_trunk` takes: the last stage's."""
        return f"stage{len(self.config.stage_widths)}"

    def embedding_from_trunk(self, last_map: torch.Tensor) -> torch.Tensor:
        """The descriptor (float32) from the last stage's map (what ``DlibResNetBackbone`` returns as its last
        stage): a quality network reading the trunk gets the recognizer's descriptor of the same pass for free."""
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(last_map, 1), 1)).float()

    def forward(
        self,
        pixel_values: torch.Tensor,
        return_dict: bool | None = None,
        **kwargs: Any,
    ) -> DlibResNetOutput | tuple:
        """Descriptors of ``pixel_values`` ``(B, 3, S, S)`` as made by :class:`DlibResNetImageProcessor`.

        Any memory format works: the input is brought to the weights' format (channels-last
        after ``model.to(memory_format=torch.channels_last)``), so callers need not match it.
        """
        x = self.stem(_check_pixels(self, pixel_values))
        for stage in self.stages:
            x = stage(x)
        embeddings = self.embedding_from_trunk(x)
        norms = torch.linalg.vector_norm(embeddings, dim=1)
        return_dict = return_dict if return_dict is not None else getattr(self.config, "return_dict", True)
        output = DlibResNetOutput(embeddings=embeddings, norms=norms)
        return output if return_dict else output.to_tuple()

    @torch.inference_mode()
    def embed(
        self,
        pixel_values: torch.Tensor,
        batch_size: int = 128,
        bf16: bool = False,
        channels_last: bool = True,
    ) -> torch.Tensor:
        """Descriptors ``(B, embedding_size)`` float32, in batches, without autograd bookkeeping.

        ``channels_last`` converts the weights once (oneDNN's fastest layout for these 3x3
        convolutions on CPU). ``bf16`` runs under bfloat16 autocast: about twice as fast on CPUs
        with native bf16 (AVX512-BF16/AMX), at about 1e-2 relative error in the descriptor.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        was_training = self.training
        self.eval()
        if channels_last:
            self.to(memory_format=torch.channels_last)
        device = self.stem.conv.weight.device
        outputs = []
        try:
            for start in range(0, pixel_values.shape[0], batch_size):
                chunk = pixel_values[start : start + batch_size].to(device=device, dtype=torch.float32)
                with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
                    outputs.append(self(chunk, return_dict=True).embeddings)
        finally:
            self.train(was_training)
        if not outputs:
            return torch.zeros((0, self.config.embedding_size), dtype=torch.float32, device=device)
        return torch.cat(outputs)


class DlibResNetBackbone(BackboneMixin, DlibResNetPreTrainedModel):
    """dlib's trunk as a transformers backbone (``AutoBackbone``): the maps named in ``config.out_features``
    (``stem``, ``stage1``-``stage5``). Loads the descriptor model's checkpoints (same layer names; the projection
    is skipped), so a quality network can read what the recognizer sees at several depths."""

    has_attentions = False
    _keys_to_ignore_on_load_unexpected = [r"^fc\."]

    def __init__(self, config: DlibResNetConfig):
        super().__init__(config)
        _build_trunk(self, config)
        self.num_features = [config.stem_width, *config.stage_widths]
        self.post_init()

    def forward(self, pixel_values: torch.Tensor, output_hidden_states: bool | None = None,
                return_dict: bool | None = None, **kwargs: Any) -> BackboneOutput | tuple:
        x = self.stem(_check_pixels(self, pixel_values))
        maps = [x]
        for stage in self.stages:
            x = stage(x)
            maps.append(x)
        wanted = set(self.out_features)
        feature_maps = tuple(m for name, m in zip(self.stage_names, maps) if name in wanted)
        hidden = tuple(maps) if output_hidden_states else None
        return_dict = return_dict if return_dict is not None else getattr(self.config, "return_dict", True)
        if not return_dict:
            return (feature_maps,) + ((hidden,) if hidden is not None else ())
        return BackboneOutput(feature_maps=feature_maps, hidden_states=hidden)
