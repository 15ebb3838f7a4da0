"""LightQNet from its released frozen TensorFlow graph (``lightqnet-dm100.pb`` of KaenChan/lightqnet, MIT).

The ``.pb`` is a ``GraphDef`` protobuf whose ``Const`` nodes hold every weight. It is parsed with the GraphDef
schema that the ``tensorboard`` package ships (``tensorboard.compat.proto``; protobuf only, no TensorFlow, no code
execution) and each convolution (HWIO; depthwise HWC1), BatchNorm (gamma, beta, moving mean and variance) and the
final MatMul/BiasAdd is copied, in graph order, onto :class:`LightQNetModel`. The block layout (expansion widths,
strides) is read from the graph itself, so the smaller releases (dm050, dm025) convert the same way.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..conversion import CheckpointError
from ..iresnet.image_processing_iresnet import IResNetImageProcessor
from .configuration_lightqnet import LightQNetConfig
from .modeling_lightqnet import LightQNetModel, SameConvBN

__all__ = ["convert_lightqnet_checkpoint", "convert_lightqnet_graph", "find_lightqnet_graph", "read_graph_layers",
           "summarize"]

GRAPH_NAME = "lightqnet-dm100.pb"


def find_lightqnet_graph() -> Path | None:
    """The released graph where the project keeps weights: ``<shared>/weights/lightqnet/``, else the source tree's
    ``third_party/lightqnet/`` (a checkout's copy); ``None`` when neither holds it."""
    from ...paths import SOURCE_TREE, shared_dir

    for candidate in (shared_dir() / "weights" / "lightqnet" / GRAPH_NAME,
                      SOURCE_TREE / "third_party" / "lightqnet" / GRAPH_NAME):
        if candidate.is_file():
            return candidate
    return None


def _graph(path: Path):
    try:
        from tensorboard.compat.proto import graph_pb2
        from tensorboard.util import tensor_util
    except ImportError as exc:  # pragma: no cover - the convert extra
        raise ImportError("reading a TensorFlow graph needs the 'tensorboard' package (its protobuf schema): "
                          "pip install 'hf-fiqa[convert]'") from exc
    graph = graph_pb2.GraphDef()
    try:
        graph.ParseFromString(path.read_bytes())
    except Exception as exc:  # protobuf's DecodeError
        raise CheckpointError(f"{path}: not a TensorFlow GraphDef ({type(exc).__name__}: {exc})") from None
    if not graph.node:
        raise CheckpointError(f"{path}: the graph has no nodes")
    consts = {n.name: tensor_util.make_ndarray(n.attr["value"].tensor) for n in graph.node if n.op == "Const"}
    return graph, consts


def read_graph_layers(path: str | Path) -> tuple[list[dict], np.ndarray, np.ndarray]:
    """``(layers, fc_weight (C, 1), fc_bias (1,))``; each layer ``{name, weight (torch layout), stride,
    depthwise, gamma, beta, mean, var, eps}`` in graph order."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (the release's lightqnet-dm100.pb)")
    graph, consts = _graph(path)

    def const(name: str) -> np.ndarray:
        name = name.split(":")[0]
        name = name[: -len("/read")] if name.endswith("/read") else name
        if name not in consts:
            raise CheckpointError(f"{path}: {name} is not a constant of the graph")
        return consts[name].astype(np.float32)

    layers, pending, fc_w, fc_b = [], None, None, None
    for node in graph.node:
        if node.op in ("Conv2D", "DepthwiseConv2dNative"):
            if node.attr["data_format"].s not in (b"", b"NHWC") or node.attr["padding"].s != b"SAME":
                raise CheckpointError(f"{path}: {node.name} is not an NHWC SAME convolution")
            w = const(node.input[1])
            depthwise = node.op == "DepthwiseConv2dNative"
            weight = w.transpose(2, 3, 0, 1) if depthwise else w.transpose(3, 2, 0, 1)
            pending = {"name": node.name, "weight": weight, "stride": int(node.attr["strides"].list.i[1]),
                       "depthwise": depthwise}
        elif node.op.startswith("FusedBatchNorm"):
            if pending is None:
                raise CheckpointError(f"{path}: {node.name} follows no convolution")
            gamma, beta, mean, var = (const(i) for i in node.input[1:5])
            pending.update(gamma=gamma, beta=beta, mean=mean, var=var, eps=float(node.attr["epsilon"].f))
            layers.append(pending)
            pending = None
        elif node.op == "MatMul":
            fc_w = const(node.input[1])
        elif node.op == "BiasAdd" and fc_w is not None:
            fc_b = const(node.input[1])
        elif node.op in ("Conv2DBackpropInput", "Mul", "Relu6", "HardSwish"):
            raise CheckpointError(f"{path}: op {node.op} ({node.name}) is not in the LightQNet layout")
    if not layers or fc_w is None or fc_b is None:
        raise CheckpointError(f"{path}: no convolution/BatchNorm layers or no final MatMul + BiasAdd: not LightQNet")
    return layers, fc_w, fc_b


def _config_from(layers: list[dict], fc_w: np.ndarray, source: Path) -> LightQNetConfig:
    """Stem, blocks (by their depthwise layer) and head from the layer sequence."""
    stem, head = layers[0], layers[-1]
    blocks, i = [], 1
    while i < len(layers) - 1:
        expand = 0
        if not layers[i]["depthwise"]:
            expand = layers[i]["weight"].shape[0]
            i += 1
        if i + 1 >= len(layers) or not layers[i]["depthwise"] or layers[i + 1]["depthwise"]:
            raise CheckpointError(f"{source}: unexpected layer order near {layers[i]['name']}")
        blocks.append((expand, layers[i + 1]["weight"].shape[0], layers[i]["stride"]))
        i += 2
    eps = {round(layer["eps"], 9) for layer in layers}
    if len(eps) != 1:
        raise CheckpointError(f"{source}: several BatchNorm epsilons {sorted(eps)}")
    return LightQNetConfig(blocks=blocks, stem_width=stem["weight"].shape[0], head_width=head["weight"].shape[0],
                           num_channels=stem["weight"].shape[1], bn_eps=eps.pop())


@torch.no_grad()
def convert_lightqnet_graph(path: str | Path) -> LightQNetModel:
    """The frozen graph -> :class:`LightQNetModel` in eval mode (:class:`CheckpointError` when it is not one)."""
    layers, fc_w, fc_b = read_graph_layers(path)
    model = LightQNetModel(_config_from(layers, fc_w, Path(path))).eval()
    modules = [m for m in model.modules() if isinstance(m, SameConvBN)]
    if len(modules) != len(layers):
        raise CheckpointError(f"{path}: {len(layers)} convolutions in the graph, {len(modules)} in the model")
    for layer, module in zip(layers, modules):
        if tuple(module.conv.weight.shape) != layer["weight"].shape:
            raise CheckpointError(f"{path}: {layer['name']} has shape {layer['weight'].shape}, the model "
                                  f"expects {tuple(module.conv.weight.shape)}")
        module.conv.weight.copy_(torch.from_numpy(np.ascontiguousarray(layer["weight"])))
        for attr, key in (("weight", "gamma"), ("bias", "beta"), ("running_mean", "mean"), ("running_var", "var")):
            getattr(module.bn, attr).copy_(torch.from_numpy(layer[key]))
    if fc_w.shape != (model.config.head_width, 1) or fc_b.shape != (1,):
        raise CheckpointError(f"{path}: final layer shapes {fc_w.shape}, {fc_b.shape}; expected "
                              f"({model.config.head_width}, 1), (1,)")
    model.fc.weight.copy_(torch.from_numpy(fc_w.T.copy()))
    model.fc.bias.copy_(torch.from_numpy(fc_b))
    return model


def convert_lightqnet_checkpoint(src: str | Path, dst: str | Path) -> LightQNetModel:
    """Convert the released ``.pb`` and save model + image processor (BGR, (x - 128) / 128) to ``dst``."""
    model = convert_lightqnet_graph(src)
    processor = IResNetImageProcessor(image_size=model.config.image_size, image_mean=(128 / 255,) * 3,
                                      image_std=(128 / 255,) * 3, channel_order="BGR")
    Path(dst).mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(dst))
    processor.save_pretrained(str(dst))
    return model


def summarize(model: LightQNetModel) -> str:
    n = sum(p.numel() for p in model.parameters()) / 1e6
    return (f"LightQNet, {len(model.config.blocks)} blocks, head {model.config.head_width}, {n:.2f}M parameters, "
            f"{model.config.image_size}x{model.config.image_size} input, quality in [0, 1]")
