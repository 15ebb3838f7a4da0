"""MobileFaceNet trained on MS1M-refine (foamliu/MobileFaceNet, Apache-2.0) from its ONNX export.

The release ships ``MobileFaceNet.onnx`` (opset 18, 1x3x112x112 -> 128-d) with every BatchNorm folded into the
convolution before it, so each of its 51 ``Conv`` nodes carries a weight and a bias. They map, in graph order, onto
the convolutions of :class:`MobileFaceNetModel` built with ``activation="relu6"`` and ``stem_separable=True``
(the release's MobileNetV2-style blocks): each folded bias becomes its BatchNorm's shift, with scale 1, mean 0 and
variance ``1 - eps`` so the normalisation is the identity; the last 1x1 conv (512 -> 128) becomes the ``fc``
Linear and its bias the embedding BatchNorm's shift. The graph is read with the ``onnx`` package (protobuf: no
pickle, no code); nothing of onnxruntime is needed at run time.

Input convention (REFERENCE.md): RGB, ``x / 255``, ImageNet mean and std, the standard ArcFace 112 template
(the repository's own padded template does not match the weights). The image processor saved beside the model
says so.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..conversion import CheckpointError
from ..iresnet.image_processing_iresnet import IResNetImageProcessor
from .configuration_mobilefacenet import MobileFaceNetConfig
from .modeling_mobilefacenet import MobileFaceNetModel

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

__all__ = ["convert_mobilefacenet_checkpoint", "convert_onnx_graph", "summarize"]


def _folded_convs(path: Path) -> tuple[list[tuple[str, np.ndarray, np.ndarray]], dict[str, int]]:
    """``[(node name, weight, bias)]`` of every Conv in graph order, and a count of the other op types."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as exc:  # pragma: no cover - the onnx extra
        raise ImportError("reading the MobileFaceNet ONNX needs the 'onnx' package: pip install 'hf-fiqa[onnx]'") from exc
    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception as exc:  # protobuf raises DecodeError and friends
        raise CheckpointError(f"{path}: not a readable ONNX model ({type(exc).__name__}: {exc})") from None
    weights = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    convs, ops = [], {}
    for node in graph.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
        if node.op_type != "Conv":
            continue
        if len(node.input) != 3 or node.input[1] not in weights or node.input[2] not in weights:
            raise CheckpointError(f"{path}: Conv node {node.name or len(convs)} has no folded weight and bias "
                                  "initializers; this is not the MobileFaceNet release's export")
        convs.append((node.name, weights[node.input[1]].astype(np.float32), weights[node.input[2]].astype(np.float32)))
    return convs, ops


def _targets(model: MobileFaceNetModel) -> list[tuple[str, torch.nn.Module, torch.nn.Module]]:
    """``(name, conv or linear, its BatchNorm)`` of the model in forward order."""
    out = []

    def add(prefix: str, block: torch.nn.Sequential) -> None:
        out.append((prefix, block[0], block[1]))

    add("stem", model.stem)
    if isinstance(model.stem_dw[0], torch.nn.Sequential):
        add("stem_dw.0", model.stem_dw[0])
        add("stem_dw.1", model.stem_dw[1])
    else:
        add("stem_dw", model.stem_dw)
    for s, stage in enumerate(model.stages):
        for b, block in enumerate(stage):
            for part in ("expand", "depthwise", "project"):
                add(f"stages.{s}.{b}.{part}", getattr(block, part))
    add("sep", model.sep)
    add("gdc", model.gdc)
    out.append(("fc", model.fc, model.features))
    return out


@torch.no_grad()
def convert_onnx_graph(path: str | Path) -> MobileFaceNetModel:
    """The release's ONNX graph -> :class:`MobileFaceNetModel` (eval mode). Raises :class:`CheckpointError` when
    the graph is not that network (op counts or a shape differ), ``FileNotFoundError`` for a missing file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (the release's weights/MobileFaceNet.onnx)")
    convs, ops = _folded_convs(path)
    clips = ops.get("Clip", 0)
    if clips == 0:
        raise CheckpointError(f"{path}: no Clip (ReLU6) nodes; expected foamliu/MobileFaceNet's ReLU6 network "
                              f"(op types: {ops})")
    last = convs[-1][1] if convs else np.zeros((0,))
    config = MobileFaceNetConfig(embedding_size=int(last.shape[0]) if last.ndim == 4 else 128, activation="relu6",
                                 stem_separable=True)
    model = MobileFaceNetModel(config).eval()
    targets = _targets(model)
    if len(convs) != len(targets):
        raise CheckpointError(f"{path}: {len(convs)} Conv nodes, the MobileFaceNet layout has {len(targets)}")
    wrong = []
    for (node, weight, bias), (name, layer, norm) in zip(convs, targets):
        want = tuple(layer.weight.shape) + ((1, 1) if isinstance(layer, torch.nn.Linear) else ())
        if tuple(weight.shape) != want or bias.shape != (norm.num_features,):
            wrong.append((f"{name} <- {node}", tuple(weight.shape), want))
    if wrong:
        raise CheckpointError.mismatch(f"{path}: the graph's convolutions do not fit MobileFaceNet", wrong_shape=wrong)
    for (_, weight, bias), (_, layer, norm) in zip(convs, targets):
        layer.weight.copy_(torch.from_numpy(weight.reshape(layer.weight.shape)))
        norm.weight.fill_(1.0)
        norm.bias.copy_(torch.from_numpy(bias))
        norm.running_mean.zero_()
        norm.running_var.fill_(1.0 - norm.eps)  # (x - 0) / sqrt(1 - eps + eps) = x
    return model


def convert_mobilefacenet_checkpoint(src: str | Path, dst: str | Path) -> MobileFaceNetModel:
    """Read the release's ``MobileFaceNet.onnx``, convert, and save model + image processor to ``dst``
    (loadable with ``AutoModel``/``AutoImageProcessor.from_pretrained(dst, trust_remote_code=True)``)."""
    model = convert_onnx_graph(src)
    processor = IResNetImageProcessor(image_size=model.config.image_size, image_mean=IMAGENET_MEAN,
                                      image_std=IMAGENET_STD, channel_order="RGB")
    Path(dst).mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(dst))
    processor.save_pretrained(str(dst))
    return model


def summarize(model: MobileFaceNetModel) -> str:
    """One line about a converted model, for ``hf-fiqa convert mobilefacenet``."""
    n = sum(p.numel() for p in model.parameters()) / 1e6
    return (f"MobileFaceNet ({model.config.activation}, {n:.2f}M parameters), {model.config.embedding_size}-d "
            f"embeddings, {model.config.image_size}x{model.config.image_size} ArcFace-template input")
