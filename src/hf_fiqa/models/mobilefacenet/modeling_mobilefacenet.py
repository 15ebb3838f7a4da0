"""MobileFaceNet (Chen et al., 2018) as a transformers model.

Layout of the paper's Table 1 for 112x112 input (channels with the default config)::

    conv3x3/2 64 -> depthwise conv3x3 64                      56x56
    bottleneck(t=2)/2 64,  then blocks[0]=4 x bottleneck(t=2)  28x28
    bottleneck(t=4)/2 128, then blocks[1]=6 x bottleneck(t=2)  14x14
    bottleneck(t=4)/2 128, then blocks[2]=2 x bottleneck(t=2)   7x7
    conv1x1 512 -> linear GDConv7x7 512 -> Linear 512->E -> BatchNorm1d

where a bottleneck is expand 1x1 + BN + PReLU, depthwise 3x3 + BN + PReLU, project 1x1 + BN,
with an identity shortcut when stride is 1 (the expansion t is relative to the block's input).

Copied next to saved weights for ``trust_remote_code=True`` loading, so it imports only
``torch``, ``transformers`` and its sibling configuration file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import BackboneOutput
from transformers.utils import ModelOutput

try:  # transformers >= 5.x keeps it here; earlier 5.x releases under utils
    from transformers.backbone_utils import BackboneMixin
except ImportError:  # pragma: no cover
    from transformers.utils.backbone_utils import BackboneMixin

from .configuration_mobilefacenet import MobileFaceNetConfig


@dataclass
class MobileFaceNetOutput(ModelOutput):
    """Output of :class:`MobileFaceNetModel`.

    Args:
        loss: margin-head loss, present when ``labels`` and a ``margin_head`` were passed.
        logits: the margin head's class logits (without margin), present with a ``margin_head``.
        embeddings: ``(B, embedding_size)`` raw embeddings, NOT L2-normalised.
        norms: ``(B,)`` L2 norm of each embedding.
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    embeddings: torch.Tensor | None = None
    norms: torch.Tensor | None = None


def _activation(name: str | None, channels: int) -> list[nn.Module]:
    if name is None:
        return []
    if name == "prelu":
        return [nn.PReLU(channels)]
    return [{"relu6": nn.ReLU6, "relu": nn.ReLU}[name]()]


class ConvBN(nn.Sequential):
    """Bias-free convolution + BatchNorm + activation (``act``: "prelu", "relu6", "relu"; None for a linear
    projection layer)."""

    def __init__(
        self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1, act: str | None = "prelu",
        eps: float = 1e-5
    ):
        layers: list[nn.Module] = [
            nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2 if kernel == 3 else 0, groups=groups, bias=False),
            nn.BatchNorm2d(out_ch, eps=eps),
        ]
        super().__init__(*layers, *_activation(act, out_ch))


class Bottleneck(nn.Module):
    """Inverted residual: expand 1x1 -> depthwise 3x3 (stride) -> linear project 1x1 (+ shortcut)."""

    def __init__(self, in_ch: int, out_ch: int, hidden: int, stride: int, eps: float, act: str = "prelu"):
        super().__init__()
        self.expand = ConvBN(in_ch, hidden, 1, act=act, eps=eps)
        self.depthwise = ConvBN(hidden, hidden, 3, stride=stride, groups=hidden, act=act, eps=eps)
        self.project = ConvBN(hidden, out_ch, 1, act=None, eps=eps)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.depthwise(self.expand(x)))
        return x + out if self.residual else out


class MobileFaceNetPreTrainedModel(PreTrainedModel):
    config_class = MobileFaceNetConfig
    base_model_prefix = "mobilefacenet"
    main_input_name = "pixel_values"
    _no_split_modules = ["Bottleneck"]

    # Copied from hf_fiqa.models.iresnet.modeling_iresnet.IResNetPreTrainedModel._init_weights
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


def _build_trunk(module: nn.Module, config: MobileFaceNetConfig) -> None:
    """``stem``, ``stem_dw``, ``stages`` and ``sep`` on ``module``: the layers the embedder and the backbone share,
    under the same names, so one checkpoint loads into either."""
    eps, c1, c2, c3 = config.bn_eps, config.stem_width, config.stage_width, config.sep_width
    act = getattr(config, "activation", "prelu")
    module.stem = ConvBN(config.num_channels, c1, 3, stride=2, act=act, eps=eps)
    if getattr(config, "stem_separable", False):
        module.stem_dw = nn.Sequential(ConvBN(c1, c1, 3, groups=c1, act="relu", eps=eps),
                                       ConvBN(c1, c1, 1, act="relu", eps=eps))
    else:
        module.stem_dw = ConvBN(c1, c1, 3, groups=c1, act=act, eps=eps)
    # (input, output, expansion of the stride-2 entry block) per stage; residual blocks expand x2.
    plan = [(c1, c1, 2), (c1, c2, 4), (c2, c2, 4)]
    stages = []
    for (in_ch, out_ch, entry_t), repeats in zip(plan, config.blocks):
        blocks = [Bottleneck(in_ch, out_ch, in_ch * entry_t, 2, eps, act)]
        blocks += [Bottleneck(out_ch, out_ch, out_ch * 2, 1, eps, act) for _ in range(repeats)]
        stages.append(nn.Sequential(*blocks))
    module.stages = nn.ModuleList(stages)
    module.sep = ConvBN(c2, c3, 1, act=act, eps=eps)


def _check_pixels(config: MobileFaceNetConfig, pixel_values: torch.Tensor) -> torch.Tensor:
    size = config.image_size
    if pixel_values.ndim != 4 or pixel_values.shape[-2:] != (size, size):
        raise ValueError(f"pixel_values must be (B, {config.num_channels}, {size}, {size}), got {tuple(pixel_values.shape)}")
    # NCHW-contiguous: images permuted from HWC arrive channels-last, and on CPU (torch 2.15)
    # the backward of a strided 1x1 convolution on channels-last input crashes the process.
    return pixel_values.contiguous()


class MobileFaceNetModel(MobileFaceNetPreTrainedModel):
    """MobileFaceNet mapping an aligned face to a raw (unnormalised) embedding."""
    # save_pretrained writes this code and an auto_map beside the weights (trust_remote_code loading)
    _auto_class = "AutoModel"
    trunk_output = "stage3"  # the backbone map embedding_from_trunk takes

    def __init__(self, config: MobileFaceNetConfig):
        super().__init__(config)
        eps, c3 = config.bn_eps, config.sep_width
        _build_trunk(self, config)
        # Global depthwise convolution: one learned 7x7 spatial weighting per channel instead of
        # average pooling, because face crops are aligned and the centre matters more than corners.
        self.gdc = ConvBN(c3, c3, config.feature_map_size, groups=c3, act=None, eps=eps)
        self.fc = nn.Linear(c3, config.embedding_size, bias=False)
        self.features = nn.BatchNorm1d(config.embedding_size, eps=eps)
        self.post_init()

    def embedding_from_trunk(self, stage3_map: torch.Tensor) -> torch.Tensor:
        """The embedding from the last residual stage's map (``stage3``, :attr:`trunk_output`, as
        ``MobileFaceNetBackbone`` returns it): a quality network reading the trunk gets the recognizer's embedding
        of the same pass for the cost of the 1x1 expansion and the GDC."""
        return self.features(self.fc(torch.flatten(self.gdc(self.sep(stage3_map)), 1)))

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        margin_head: Callable[..., Any] | None = None,
        return_dict: bool | None = None,
        **kwargs: Any,
    ) -> MobileFaceNetOutput | tuple:
        """Embed ``pixel_values`` ``(B, 3, S, S)`` normalised by the image processor (``IResNetImageProcessor``).

        ``margin_head`` (e.g. ``ArcFaceHead``/``MagFaceHead``: a callable ``(embeddings, labels)``
        returning an object with ``loss`` and ``logits``) adds training outputs.
        """
        if labels is not None and margin_head is None:
            raise ValueError("labels were given but no margin_head: pass e.g. ArcFaceHead/MagFaceHead to compute a loss")
        x = self.stem_dw(self.stem(_check_pixels(self.config, pixel_values)))
        for stage in self.stages:
            x = stage(x)
        embeddings = self.embedding_from_trunk(x)
        norms = torch.linalg.vector_norm(embeddings, dim=1)
        loss = logits = None
        if margin_head is not None:
            head_out = margin_head(embeddings, labels)
            loss, logits = getattr(head_out, "loss", None), getattr(head_out, "logits", None)
        return_dict = return_dict if return_dict is not None else getattr(self.config, "return_dict", True)
        output = MobileFaceNetOutput(loss=loss, logits=logits, embeddings=embeddings, norms=norms)
        return output if return_dict else output.to_tuple()


class MobileFaceNetBackbone(BackboneMixin, MobileFaceNetPreTrainedModel):
    """The recognizer's trunk as a transformers backbone (``AutoBackbone``): the maps named in
    ``config.out_features`` (``stem`` 56x56, ``stage1`` 28x28, ``stage2`` 14x14, ``stage3`` and ``sep`` 7x7 for
    112x112 input). Loads the embedder's checkpoints (same layer names; the GDC and linear head are skipped), so
    a quality network can read what the recognizer sees at several depths."""

    has_attentions = False
    _keys_to_ignore_on_load_unexpected = [r"^gdc\.", r"^fc\.", r"^features\."]

    def __init__(self, config: MobileFaceNetConfig):
        super().__init__(config)
        _build_trunk(self, config)
        self.num_features = [config.stem_width, config.stem_width, config.stage_width, config.stage_width,
                             config.sep_width]
        self.post_init()

    def forward(self, pixel_values: torch.Tensor, output_hidden_states: bool | None = None,
                return_dict: bool | None = None, **kwargs: Any) -> BackboneOutput | tuple:
        x = self.stem_dw(self.stem(_check_pixels(self.config, pixel_values)))
        maps = [x]
        for stage in self.stages:
            x = stage(x)
            maps.append(x)
        maps.append(self.sep(x))
        wanted = set(self.out_features)
        feature_maps = tuple(m for name, m in zip(self.stage_names, maps) if name in wanted)
        hidden = tuple(maps) if output_hidden_states else None
        return_dict = return_dict if return_dict is not None else getattr(self.config, "return_dict", True)
        if not return_dict:
            return (feature_maps,) + ((hidden,) if hidden is not None else ())
        return BackboneOutput(feature_maps=feature_maps, hidden_states=hidden)
