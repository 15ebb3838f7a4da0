"""Configuration of LightQNet (Chen et al., IEEE SPL 2021), a 1.8 MB face-quality network on a MobileNetV3-style trunk.

Copied next to saved weights for ``trust_remote_code=True`` loading: standard library and ``transformers`` only.
"""

from __future__ import annotations

from typing import Sequence

from transformers import PretrainedConfig

# The released lightqnet-dm100 graph: (expansion channels, 0 = none; output channels; depthwise stride) per block.
LIGHTQNET_DM100_BLOCKS: tuple[tuple[int, int, int], ...] = (
    (0, 16, 2), (72, 24, 2), (88, 24, 1), (96, 40, 2), (240, 40, 1), (240, 40, 1), (120, 48, 1), (144, 48, 1),
    (288, 96, 2), (576, 96, 1), (576, 96, 1),
)
# LightQNet's demo template: left eye, right eye, mouth centre in percent of the aligned square (REFERENCE.md).
LIGHTQNET_TEMPLATE = ((34.19, 46.16), (65.65, 45.98), (50.12, 82.40))


class LightQNetConfig(PretrainedConfig):
    """Shape of a LightQNet.

    A 3x3 stem convolution (stride 1) -> inverted-residual blocks (1x1 expand + BN + ReLU, 3x3 depthwise + BN +
    ReLU, 1x1 project + BN; a shortcut where stride is 1 and the width stays) -> 1x1 conv to ``head_width`` + BN +
    ReLU -> global average pool -> one linear unit -> sigmoid: the quality in [0, 1], higher is better. Every
    convolution pads like TensorFlow's ``SAME`` (asymmetric on strided layers), as the released graph does.

    Args:
        blocks: ``(expand, out, stride)`` per block (``expand`` 0: no expansion layer).
        stem_width, head_width: channels of the stem and of the last 1x1 convolution.
        image_size: side of the square input (96).
        bn_eps: BatchNorm epsilon of the graph (2e-5).
        alignment_template: landmarks of the aligned input in pixels of ``image_size``: the two eye centres and the
            mouth centre (LightQNet aligns on 3 points).
    """

    _auto_class = "AutoConfig"
    model_type = "lightqnet"

    def __init__(self, blocks: Sequence[Sequence[int]] = LIGHTQNET_DM100_BLOCKS, stem_width: int = 16,
                 head_width: int = 576, image_size: int = 96, num_channels: int = 3, bn_eps: float = 2e-5,
                 alignment_template: Sequence[Sequence[float]] | None = None, **kwargs):
        self.blocks = [[int(v) for v in block] for block in blocks]
        if not self.blocks or any(len(b) != 3 or b[1] <= 0 or b[2] not in (1, 2) or b[0] < 0 for b in self.blocks):
            raise ValueError(f"blocks must be (expand >= 0, out > 0, stride 1 or 2) triples, got {blocks!r}")
        for name, value in (("stem_width", stem_width), ("head_width", head_width), ("image_size", image_size),
                            ("num_channels", num_channels)):
            if isinstance(value, bool) or int(value) != value or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.stem_width, self.head_width = int(stem_width), int(head_width)
        self.image_size, self.num_channels = int(image_size), int(num_channels)
        if not float(bn_eps) > 0:
            raise ValueError(f"bn_eps must be positive, got {bn_eps!r}")
        self.bn_eps = float(bn_eps)
        if alignment_template is None:
            alignment_template = [[x / 100 * self.image_size, y / 100 * self.image_size] for x, y in LIGHTQNET_TEMPLATE]
        self.alignment_template = [[float(x), float(y)] for x, y in alignment_template]
        if len(self.alignment_template) not in (3, 5):
            raise ValueError(f"alignment_template must be 3 or 5 (x, y) points, got {len(self.alignment_template)}")
        super().__init__(**kwargs)
