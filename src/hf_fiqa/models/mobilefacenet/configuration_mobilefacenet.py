"""Configuration of MobileFaceNet (Chen et al., 2018), the ~1M-parameter face embedder.

Copied next to saved weights for ``trust_remote_code=True`` loading: standard library and
``transformers`` imports only.
"""

from __future__ import annotations

from typing import Sequence

from transformers import PretrainedConfig

try:  # transformers >= 5.x keeps it here; earlier 5.x releases under utils
    from transformers.backbone_utils import BackboneConfigMixin
except ImportError:  # pragma: no cover
    from transformers.utils.backbone_utils import BackboneConfigMixin

# The maps ``MobileFaceNetBackbone`` can return, input side first (sides for 112x112 input: 56, 28, 14, 7, 7).
STAGE_NAMES = ["stem", "stage1", "stage2", "stage3", "sep"]


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


class MobileFaceNetConfig(BackboneConfigMixin, PretrainedConfig):
    """Shape of a MobileFaceNet.

    The layout is the paper's Table 1 (the one TFace/SDD-FIQA and most PyTorch face repos use):
    conv3x3/2 (stem_width) -> depthwise conv3x3 -> 3 stages, each a stride-2 inverted bottleneck
    followed by ``blocks[i]`` residual bottlenecks -> 1x1 conv to ``sep_width`` -> global
    depthwise conv (GDC, kernel = feature map) -> Linear -> BatchNorm1d.

    Args:
        embedding_size: 512 by default (TFace / SDD-FIQA / insightface practice, ~1.2M parameters);
            the paper's original is 128 (~1.0M parameters).
        blocks: residual bottlenecks after each of the 3 stride-2 bottlenecks; the paper's (4, 6, 2).
        stem_width: channels of the stem and first stage (64).
        stage_width: channels of stages 2 and 3 (128).
        sep_width: channels of the 1x1 expansion before the GDC (512).
        image_size: side of the square aligned input; a multiple of 16 (112 in practice).
        bn_eps: BatchNorm epsilon.
        activation: ``"prelu"`` (the paper's) or ``"relu6"`` (MobileNetV2's, as in foamliu/MobileFaceNet, the
            MS1M-trained release ``hf-fiqa convert mobilefacenet`` reads).
        stem_separable: the stem's depthwise 3x3 is followed by a 1x1 pointwise conv, each with BatchNorm and
            ReLU (foamliu/MobileFaceNet's ``DepthwiseSeparableConv``); False: the paper's depthwise conv alone.
        out_features / out_indices: the maps ``MobileFaceNetBackbone`` (``AutoBackbone``) returns, named from
            ``stage_names`` (``stem``, ``stage1``-``stage3``, ``sep``); the last one by default. The embedding
            model ignores them.

    Pixel normalisation lives in the image processor (the iResNet one,
    ``IResNetImageProcessor``, saved next to the weights).
    """
    # save_pretrained writes this code and an auto_map beside the weights (trust_remote_code loading)
    _auto_class = "AutoConfig"

    model_type = "mobilefacenet"

    def __init__(
        self,
        embedding_size: int = 512,
        blocks: Sequence[int] = (4, 6, 2),
        stem_width: int = 64,
        stage_width: int = 128,
        sep_width: int = 512,
        image_size: int = 112,
        num_channels: int = 3,
        bn_eps: float = 1e-5,
        activation: str = "prelu",
        stem_separable: bool = False,
        **kwargs,
    ):
        self.embedding_size = _positive_int("embedding_size", embedding_size)
        try:
            blocks = list(blocks)
        except TypeError:
            raise ValueError(f"blocks must be 3 non-negative integers, got {blocks!r}") from None
        if len(blocks) != 3 or any(isinstance(b, bool) or not isinstance(b, int) or b < 0 for b in blocks):
            raise ValueError(f"blocks must be 3 non-negative integers, got {blocks!r}")
        self.blocks = blocks
        self.stem_width = _positive_int("stem_width", stem_width)
        self.stage_width = _positive_int("stage_width", stage_width)
        self.sep_width = _positive_int("sep_width", sep_width)
        self.image_size = _positive_int("image_size", image_size)
        if self.image_size % 16:
            raise ValueError(f"image_size must be a multiple of 16 (4 stride-2 steps), got {image_size}")
        self.num_channels = _positive_int("num_channels", num_channels)
        if not float(bn_eps) > 0:
            raise ValueError(f"bn_eps must be positive, got {bn_eps!r}")
        self.bn_eps = float(bn_eps)
        if activation not in ("prelu", "relu6"):
            raise ValueError(f"activation must be 'prelu' or 'relu6', got {activation!r}")
        self.activation = activation
        self.stem_separable = bool(stem_separable)
        self.stage_names = list(STAGE_NAMES)
        self.set_output_features_output_indices(out_features=kwargs.pop("out_features", None),
                                                out_indices=kwargs.pop("out_indices", None))
        super().__init__(**kwargs)

    @property
    def feature_map_size(self) -> int:
        """Side of the map the GDC pools (7 for 112x112 input)."""
        return self.image_size // 16
