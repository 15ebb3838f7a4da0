"""Convert MediaPipe's ``face_landmark.tflite`` (468-point face mesh) into a :class:`FaceMeshModel` folder.

The model ships in the ``mediapipe==0.10.14`` wheel (Apache-2.0; later releases ship no
models) as ``mediapipe/modules/face_landmark/face_landmark.tflite``. Get it without installing
mediapipe or its dependencies::

    pip download mediapipe==0.10.14 --no-deps -d DIR   # any platform's wheel holds the same file
    hf-fiqa convert face-mesh DIR/mediapipe-0.10.14-*.whl out/face-mesh

SRC may be the wheel (read as a zip archive) or the extracted ``.tflite``; without SRC the
converter looks at ``$HF_FIQA_FACE_MESH_SRC`` and then at an installed ``mediapipe`` package.

The ``.tflite`` file is a FlatBuffer (TensorFlow Lite schema). It is read with the ``tflite``
package (pure-Python schema bindings on the ``flatbuffers`` runtime; ``pip install
hf-fiqa[convert]``); nothing in it is executed or unpickled. Rather than trusting layer names,
the converter follows the data flow from the input tensor: the stem convolution, residual
blocks (``DEPTHWISE_CONV_2D -> CONV_2D 1x1 -> ADD(shortcut) -> PRELU``, the shortcut being the
block input or ``PAD(MAX_POOL_2D(input))``), the fork into two heads, each head's 1x1 reduction
and its last convolution, which must be a graph output. Widths, block counts, crop size and the
number of landmarks are read off that walk, every option (padding, stride, fused activation,
dilation, depth multiplier, pool size) is checked against what the torch model computes, and a
file holding another network (the attention/iris variant with its custom ops, a detector, a
quantized model) stops with a :class:`~hf_fiqa.models.conversion.CheckpointError` naming the
file, the operator and what was expected.

Weights are stored as float16 in the file (each behind a ``DEQUANTIZE`` operator); they are
widened to float32 exactly. TFLite layouts become torch's: convolution kernels ``(O, H, W, I)``
-> ``(O, I, H, W)``, depthwise kernels ``(1, H, W, C)`` -> ``(C, 1, H, W)``, PReLU slopes
``(1, 1, C)`` -> ``(C,)``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..conversion import CheckpointError, compare_state_dicts
from .configuration_face_mesh import FaceMeshConfig
from .image_processing_face_mesh import FaceMeshImageProcessor
from .modeling_face_mesh import FaceMeshModel

WHEEL_MEMBER = "mediapipe/modules/face_landmark/face_landmark.tflite"
SOURCE_ENV = "HF_FIQA_FACE_MESH_SRC"
_MAX_TFLITE_BYTES = 64 << 20  # the mesh is 1.2 MB; anything this large is another file


# --------------------------------------------------------------------------------------------
# Reading the FlatBuffer
# --------------------------------------------------------------------------------------------


def _tflite_module() -> Any:
    try:
        import tflite  # noqa: PLC0415 - conversion-only dependency
    except ImportError:
        raise CheckpointError(
            "reading .tflite files needs the 'tflite' package (FlatBuffer schema bindings, Apache-2.0): "
            "pip install 'hf-fiqa[convert]' (or pip install tflite)"
        ) from None
    return tflite


def read_tflite_bytes(path: str | Path) -> tuple[bytes, str]:
    """The ``.tflite`` bytes of ``path`` (a ``.tflite`` file or a mediapipe wheel) and a name for messages."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"face mesh source not found: {path}")
    with open(path, "rb") as handle:
        head = handle.read(8)
    # A .tflite with metadata also ends in a zip of its associated files: the FlatBuffer identifier decides.
    if head[4:8] != b"TFL3" and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            try:
                info = archive.getinfo(WHEEL_MEMBER)
            except KeyError:
                raise CheckpointError(
                    f"{path}: a zip archive without {WHEEL_MEMBER}; pass the mediapipe==0.10.14 wheel "
                    "(later mediapipe releases ship no models) or the extracted .tflite"
                ) from None
            if info.file_size > _MAX_TFLITE_BYTES:
                raise CheckpointError(f"{path}!{WHEEL_MEMBER}: implausibly large ({info.file_size} bytes)")
            return archive.read(info), f"{path}!{WHEEL_MEMBER}"
    if path.stat().st_size > _MAX_TFLITE_BYTES:
        raise CheckpointError(f"{path}: {path.stat().st_size} bytes is not the 1.2 MB face mesh model")
    return path.read_bytes(), str(path)


@dataclass
class _Op:
    index: int
    kind: str
    inputs: list[int]
    outputs: list[int]
    options: dict[str, Any] = field(default_factory=dict)


class TFLiteGraph:
    """Operators, tensors and constant data of the first subgraph of a ``.tflite`` model."""

    def __init__(self, data: bytes, source: str):
        self.source = source
        if len(data) < 8 or data[4:8] != b"TFL3":
            raise CheckpointError(f"{source}: not a TensorFlow Lite model (no 'TFL3' FlatBuffer identifier)")
        tfl = _tflite_module()
        try:
            model = tfl.Model.GetRootAs(data, 0)
            if model.SubgraphsLength() < 1:
                raise CheckpointError(f"{source}: the model has no subgraph")
            graph = model.Subgraphs(0)
            names = {v: k for k, v in vars(tfl.BuiltinOperator).items() if not k.startswith("_")}
            codes = []
            for i in range(model.OperatorCodesLength()):
                code = model.OperatorCodes(i)
                builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
                custom = code.CustomCode()
                codes.append(f"CUSTOM({custom.decode(errors='replace')})" if custom else names.get(builtin, f"#{builtin}"))
            type_names = {v: k for k, v in vars(tfl.TensorType).items() if not k.startswith("_")}
            self.tensor_names, self.tensor_shapes, self.tensor_types, buffers = [], [], [], []
            for t in range(graph.TensorsLength()):
                tensor = graph.Tensors(t)
                self.tensor_names.append((tensor.Name() or b"").decode(errors="replace"))
                self.tensor_shapes.append(tuple(int(d) for d in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else ())
                self.tensor_types.append(type_names.get(tensor.Type(), str(tensor.Type())))
                buffers.append(tensor.Buffer())
            self.inputs = [graph.Inputs(i) for i in range(graph.InputsLength())]
            self.outputs = [graph.Outputs(i) for i in range(graph.OutputsLength())]
            self.ops: list[_Op] = []
            for i in range(graph.OperatorsLength()):
                op = graph.Operators(i)
                kind = codes[op.OpcodeIndex()]
                self.ops.append(_Op(i, kind, [op.Inputs(j) for j in range(op.InputsLength())],
                                    [op.Outputs(j) for j in range(op.OutputsLength())], self._options(tfl, op, kind)))
            self._raw: dict[int, np.ndarray] = {}
            for t, b in enumerate(buffers):
                if 0 < b < model.BuffersLength():
                    buffer = model.Buffers(b)
                    if buffer.DataLength() > 0:
                        self._raw[t] = buffer.DataAsNumpy()
                    elif buffer.Offset() > 1:  # data stored after the FlatBuffer (models over 2 GB)
                        self._raw[t] = np.frombuffer(data, np.uint8, buffer.Size(), buffer.Offset())
        except CheckpointError:
            raise
        except Exception as exc:  # a damaged FlatBuffer surfaces as IndexError/struct.error/...
            raise CheckpointError(f"{source}: cannot be parsed as a TFLite FlatBuffer ({type(exc).__name__}: {exc})") from None
        self.producer = {t: op for op in self.ops for t in op.outputs}
        self.consumers: dict[int, list[_Op]] = {}
        for op in self.ops:
            for t in op.inputs:
                if t >= 0:
                    self.consumers.setdefault(t, []).append(op)

    @staticmethod
    def _options(tfl: Any, op: Any, kind: str) -> dict[str, Any]:
        table = op.BuiltinOptions()
        if table is None:
            return {}
        padding = {tfl.Padding.SAME: "SAME", tfl.Padding.VALID: "VALID"}
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            opts = tfl.Conv2DOptions() if kind == "CONV_2D" else tfl.DepthwiseConv2DOptions()
            opts.Init(table.Bytes, table.Pos)
            found = dict(padding=padding.get(opts.Padding()), stride=(opts.StrideH(), opts.StrideW()),
                         activation=opts.FusedActivationFunction(),
                         dilation=(opts.DilationHFactor(), opts.DilationWFactor()))
            if kind == "DEPTHWISE_CONV_2D":
                found["depth_multiplier"] = opts.DepthMultiplier()
            return found
        if kind == "MAX_POOL_2D":
            opts = tfl.Pool2DOptions()
            opts.Init(table.Bytes, table.Pos)
            return dict(padding=padding.get(opts.Padding()), stride=(opts.StrideH(), opts.StrideW()),
                        filter=(opts.FilterHeight(), opts.FilterWidth()), activation=opts.FusedActivationFunction())
        if kind == "ADD":
            opts = tfl.AddOptions()
            opts.Init(table.Bytes, table.Pos)
            return dict(activation=opts.FusedActivationFunction())
        return {}

    # -- helpers used by the walk ----------------------------------------------------------------
    def error(self, message: str, op: _Op | None = None) -> CheckpointError:
        where = f" at operator {op.index} ({op.kind} -> {self.tensor_names[op.outputs[0]]!r})" if op else ""
        return CheckpointError(f"{self.source}: {message}{where}; this converter reads MediaPipe's face_landmark.tflite "
                               "(the 468-point mesh without attention)")

    def constant(self, t: int, op: _Op, what: str) -> np.ndarray:
        """The value of constant tensor ``t`` as float32 (through one ``DEQUANTIZE`` of float16 data)."""
        source = self.producer.get(t)
        if source is not None:
            if source.kind != "DEQUANTIZE":
                raise self.error(f"{what} is computed by {source.kind}, not stored", op)
            t = source.inputs[0]
        raw = self._raw.get(t)
        if raw is None:
            raise self.error(f"{what} ({self.tensor_names[t]!r}) has no stored data", op)
        dtypes = {"FLOAT16": "<f2", "FLOAT32": "<f4", "INT32": "<i4", "INT64": "<i8"}
        kind = self.tensor_types[t]
        if kind not in dtypes:
            raise self.error(f"{what} ({self.tensor_names[t]!r}) is stored as {kind}; quantized models are not supported", op)
        shape = self.tensor_shapes[t]
        values = np.frombuffer(raw.tobytes(), dtype=dtypes[kind])
        if values.size != int(np.prod(shape)):
            raise self.error(f"{what} ({self.tensor_names[t]!r}) holds {values.size} values for shape {shape}", op)
        values = values.reshape(shape)
        return values.astype(np.float32) if kind.startswith("FLOAT") else values

    def only_consumer(self, t: int, kind: str, after: _Op | None) -> _Op:
        found = [op for op in self.consumers.get(t, []) if op.kind != "DEQUANTIZE"]
        if len(found) != 1 or found[0].kind != kind:
            got = ", ".join(op.kind for op in found) or "nothing"
            raise self.error(f"expected {kind} to follow, found {got}", after)
        return found[0]


# --------------------------------------------------------------------------------------------
# Walking the graph
# --------------------------------------------------------------------------------------------


@dataclass
class _Conv:
    weight: np.ndarray  # torch layout
    bias: np.ndarray
    alpha: np.ndarray | None = None  # PReLU slope after it, if any


@dataclass
class _Block:
    depthwise: _Conv
    pointwise: _Conv
    alpha: np.ndarray
    stride: int
    in_channels: int
    out_channels: int


def _check_activation(graph: TFLiteGraph, op: _Op) -> None:
    if op.options.get("activation", 0) != 0:
        raise graph.error(f"fused activation {op.options['activation']} is not modelled", op)
    if op.options.get("dilation", (1, 1)) != (1, 1):
        raise graph.error(f"dilation {op.options['dilation']} is not modelled", op)


def _conv(graph: TFLiteGraph, op: _Op, what: str) -> _Conv:
    _check_activation(graph, op)
    if len(op.inputs) < 3 or op.inputs[2] < 0:
        raise graph.error(f"{what} has no bias", op)
    kernel = graph.constant(op.inputs[1], op, f"{what} kernel")
    bias = graph.constant(op.inputs[2], op, f"{what} bias")
    if op.kind == "DEPTHWISE_CONV_2D":
        if op.options.get("depth_multiplier", 1) not in (0, 1) or kernel.shape[0] != 1:
            raise graph.error("depthwise convolution with a depth multiplier is not modelled", op)
        weight = kernel.transpose(3, 0, 1, 2)  # (1, H, W, C) -> (C, 1, H, W)
    else:
        weight = kernel.transpose(0, 3, 1, 2)  # (O, H, W, I) -> (O, I, H, W)
    if bias.shape != (weight.shape[0],):
        raise graph.error(f"{what} bias has shape {bias.shape} for {weight.shape[0]} outputs", op)
    return _Conv(np.ascontiguousarray(weight), np.ascontiguousarray(bias))


def _prelu(graph: TFLiteGraph, op: _Op, channels: int) -> np.ndarray:
    alpha = graph.constant(op.inputs[1], op, "PReLU slope")
    if alpha.size != channels:
        raise graph.error(f"PReLU slope has {alpha.size} values for {channels} channels", op)
    return alpha.reshape(channels)


def _block(graph: TFLiteGraph, x: int, dw_op: _Op) -> tuple[_Block, int]:
    """The residual block starting at ``dw_op`` (a consumer of tensor ``x``); returns it and its output tensor."""
    in_channels = graph.tensor_shapes[x][-1]
    stride = dw_op.options.get("stride", (0, 0))
    if stride not in ((1, 1), (2, 2)) or dw_op.options.get("padding") != "SAME":
        raise graph.error(f"depthwise convolution with stride {stride}, padding {dw_op.options.get('padding')} "
                          "(expected SAME, stride 1 or 2)", dw_op)
    depthwise = _conv(graph, dw_op, "depthwise kernel")
    if depthwise.weight.shape != (in_channels, 1, 3, 3):
        raise graph.error(f"depthwise kernel {depthwise.weight.shape}, expected ({in_channels}, 1, 3, 3)", dw_op)
    pw_op = graph.only_consumer(dw_op.outputs[0], "CONV_2D", dw_op)
    if pw_op.options.get("stride") != (1, 1):
        raise graph.error("pointwise convolution with a stride", pw_op)
    pointwise = _conv(graph, pw_op, "pointwise kernel")
    out_channels = pointwise.weight.shape[0]
    if pointwise.weight.shape[1:] != (in_channels, 1, 1):
        raise graph.error(f"pointwise kernel {pointwise.weight.shape}, expected (*, {in_channels}, 1, 1)", pw_op)
    add_op = graph.only_consumer(pw_op.outputs[0], "ADD", pw_op)
    _check_activation(graph, add_op)
    (shortcut,) = [t for t in add_op.inputs if t != pw_op.outputs[0]] or [None]
    if stride == (1, 1):
        if shortcut != x or out_channels != in_channels:
            raise graph.error("a stride-1 block must add its own input at the same width", add_op)
    else:
        pad_op = graph.producer.get(shortcut)
        pooled = shortcut
        if pad_op is not None and pad_op.kind == "PAD":
            pads = graph.constant(pad_op.inputs[1], pad_op, "channel padding").reshape(-1, 2).tolist()
            if pads != [[0, 0], [0, 0], [0, 0], [0, out_channels - in_channels]]:
                raise graph.error(f"shortcut padding {pads}: only zero channels after the input's are modelled", pad_op)
            pooled = pad_op.inputs[0]
        elif out_channels != in_channels:
            raise graph.error("a widening stride-2 block without channel padding on its shortcut", add_op)
        pool_op = graph.producer.get(pooled)
        if (pool_op is None or pool_op.kind != "MAX_POOL_2D" or pool_op.inputs[0] != x
                or pool_op.options.get("filter") != (2, 2) or pool_op.options.get("stride") != (2, 2)):
            raise graph.error("a stride-2 block's shortcut must be a 2x2/2 max-pool of the block input", add_op)
        _check_activation(graph, pool_op)
        shape = graph.tensor_shapes[x]
        if len(shape) != 4 or shape[1] % 2 or shape[2] % 2:
            raise graph.error(f"stride-2 block on an odd-sized map {shape}", dw_op)
    prelu_op = graph.only_consumer(add_op.outputs[0], "PRELU", add_op)
    alpha = _prelu(graph, prelu_op, out_channels)
    return _Block(depthwise, pointwise, alpha, stride[0], in_channels, out_channels), prelu_op.outputs[0]


def _chain(graph: TFLiteGraph, x: int) -> tuple[list[_Conv | _Block], int, list[_Op]]:
    """Layers from tensor ``x`` until a graph output (last item: a plain ``_Conv``) or a fork.

    Returns ``(layers, last tensor, depthwise ops at the fork)`` (no ops when it ended at an output).
    """
    layers: list[_Conv | _Block] = []
    while True:
        consumers = [op for op in graph.consumers.get(x, []) if op.kind != "DEQUANTIZE"]
        depthwise = [op for op in consumers if op.kind == "DEPTHWISE_CONV_2D"]
        convs = [op for op in consumers if op.kind == "CONV_2D"]
        if len(depthwise) > 1:
            return layers, x, depthwise
        if len(depthwise) == 1:
            block, x = _block(graph, x, depthwise[0])
            layers.append(block)
            continue
        if len(convs) == 1 and len(consumers) == 1:
            op = convs[0]
            conv = _conv(graph, op, "convolution kernel")
            if op.outputs[0] in graph.outputs:
                if op.options.get("padding") != "VALID":
                    raise graph.error("an output convolution must be VALID", op)
                layers.append(conv)
                return layers, op.outputs[0], []
            if conv.weight.shape[2:] != (1, 1) or op.options.get("stride") != (1, 1):
                raise graph.error(f"inner convolution {conv.weight.shape} stride {op.options.get('stride')}, "
                                  "expected 1x1/1", op)
            prelu_op = graph.only_consumer(op.outputs[0], "PRELU", op)
            conv.alpha = _prelu(graph, prelu_op, conv.weight.shape[0])
            layers.append(conv)
            x = prelu_op.outputs[0]
            continue
        kinds = ", ".join(op.kind for op in consumers) or "nothing (and it is not a graph output)"
        raise graph.error(f"tensor {graph.tensor_names[x]!r} feeds {kinds}", graph.producer.get(x))


@dataclass
class FaceMeshWeights:
    """What the converter reads from a ``.tflite``: the config it implies and the torch state dict."""

    config: FaceMeshConfig
    state_dict: dict[str, torch.Tensor]
    source: str


def _put_conv(state: dict[str, np.ndarray], prefix: str, conv: _Conv) -> None:
    state[f"{prefix}.weight"], state[f"{prefix}.bias"] = conv.weight, conv.bias


def _put_block(state: dict[str, np.ndarray], prefix: str, block: _Block) -> None:
    _put_conv(state, f"{prefix}.depthwise", block.depthwise)
    _put_conv(state, f"{prefix}.pointwise", block.pointwise)
    state[f"{prefix}.act.weight"] = block.alpha


def _read_head(graph: TFLiteGraph, x: int, dw_op: _Op) -> tuple[list[_Block], _Conv, list[_Block], _Conv]:
    first, x = _block(graph, x, dw_op)
    layers, _, fork = _chain(graph, x)
    if fork:
        raise graph.error("a head forks again", fork[0])
    items = [first] + layers
    reduce_at = [i for i, item in enumerate(items) if isinstance(item, _Conv) and item.alpha is not None]
    if len(reduce_at) != 1 or not isinstance(items[-1], _Conv) or items[-1].alpha is not None:
        raise graph.error("a head must be blocks, one 1x1 convolution + PReLU, blocks, and an output convolution")
    r = reduce_at[0]
    before, reduce, after, out = items[:r], items[r], items[r + 1:-1], items[-1]
    if first.stride != 2 or any(b.stride != 1 for b in before[1:] + after):
        raise graph.error("a head opens with its only stride-2 block")
    return before, reduce, after, out  # type: ignore[return-value]


def read_face_mesh_tflite(path: str | Path) -> FaceMeshWeights:
    """Parse ``face_landmark.tflite`` (or the wheel holding it) into a config and torch weights."""
    data, source = read_tflite_bytes(path)
    graph = TFLiteGraph(data, source)
    if len(graph.inputs) != 1 or len(graph.outputs) != 2:
        raise graph.error(f"the graph has {len(graph.inputs)} inputs and {len(graph.outputs)} outputs, expected 1 and 2")
    unsupported = sorted({op.kind for op in graph.ops} - {"CONV_2D", "DEPTHWISE_CONV_2D", "PRELU", "ADD", "MAX_POOL_2D",
                                                            "PAD", "DEQUANTIZE"})
    if unsupported:
        raise graph.error(f"operators {unsupported} are not part of the face mesh network")
    x = graph.inputs[0]
    shape = graph.tensor_shapes[x]
    if len(shape) != 4 or shape[0] != 1 or shape[1] != shape[2] or graph.tensor_types[x] != "FLOAT32":
        raise graph.error(f"input {graph.tensor_names[x]!r} is {graph.tensor_types[x]} {shape}, expected float (1, S, S, C)")
    image_size, channels = shape[1], shape[3]

    stem_op = graph.only_consumer(x, "CONV_2D", None)
    if stem_op.options.get("stride") != (2, 2) or stem_op.options.get("padding") != "SAME":
        raise graph.error("the stem must be a SAME 3x3/2 convolution", stem_op)
    stem = _conv(graph, stem_op, "stem kernel")
    if stem.weight.shape[1:] != (channels, 3, 3):
        raise graph.error(f"stem kernel {stem.weight.shape}, expected (*, {channels}, 3, 3)", stem_op)
    prelu_op = graph.only_consumer(stem_op.outputs[0], "PRELU", stem_op)
    stem.alpha = _prelu(graph, prelu_op, stem.weight.shape[0])
    layers, fork_tensor, fork = _chain(graph, prelu_op.outputs[0])
    if len(fork) != 2 or not all(isinstance(item, _Block) for item in layers):
        raise graph.error("the backbone must be residual blocks ending in a fork into two heads")
    blocks: list[_Block] = layers  # type: ignore[assignment]

    # Stages: a new one starts at every stride-2 block.
    stage_widths, stage_blocks, stage_members = [stem.weight.shape[0]], [0], [[]]
    for block in blocks:
        if block.stride == 2:
            stage_widths.append(block.out_channels)
            stage_blocks.append(0)
            stage_members.append([])
        stage_blocks[-1] += 1
        stage_members[-1].append(block)

    heads = {}
    for dw_op in fork:
        before, reduce, after, out = _read_head(graph, fork_tensor, dw_op)
        name = "presence" if out.weight.shape[0] == 1 else "landmark"
        if name in heads:
            raise graph.error("both heads have the same output size")
        heads[name] = (before, reduce, after, out)
    landmark_out = heads["landmark"][3].weight.shape[0]
    if landmark_out % 3:
        raise graph.error(f"the landmark head gives {landmark_out} values, not (x, y, z) triples")
    widths = {head[1].weight.shape[0] for head in heads.values()}
    if len(widths) != 1:
        raise graph.error(f"the heads reduce to different widths {sorted(widths)}")
    try:
        config = FaceMeshConfig(
            image_size=image_size, num_channels=channels, num_landmarks=landmark_out // 3,
            stage_widths=stage_widths, stage_blocks=stage_blocks, head_width=widths.pop(),
            landmark_head_blocks=(len(heads["landmark"][0]), len(heads["landmark"][2])),
            presence_head_blocks=(len(heads["presence"][0]), len(heads["presence"][2])),
            tflite_sha256=hashlib.sha256(data).hexdigest(),  # provenance, saved in config.json
        )
    except ValueError as exc:
        raise graph.error(f"the network read from the file does not fit FaceMeshConfig: {exc}") from None

    state: dict[str, np.ndarray] = {}
    _put_conv(state, "stem.conv", stem)
    state["stem.act.weight"] = stem.alpha
    for s, members in enumerate(stage_members):
        for b, block in enumerate(members):
            _put_block(state, f"stages.{s}.{b}", block)
    for name, (before, reduce, after, out) in heads.items():
        for b, block in enumerate(before):
            _put_block(state, f"{name}_head.blocks.{b}", block)
        _put_conv(state, f"{name}_head.reduce", reduce)
        state[f"{name}_head.reduce_act.weight"] = reduce.alpha  # type: ignore[assignment]
        for b, block in enumerate(after):
            _put_block(state, f"{name}_head.refine.{b}", block)
        _put_conv(state, f"{name}_head.out", out)
    for key, value in state.items():
        if not np.isfinite(value).all():
            raise CheckpointError(f"{source}: non-finite values in {key}")
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in state.items()}
    return FaceMeshWeights(config=config, state_dict=tensors, source=source)


def find_face_mesh_source() -> Path:
    """The default SRC: ``$HF_FIQA_FACE_MESH_SRC``, else the file inside an installed ``mediapipe`` package."""
    env = os.environ.get(SOURCE_ENV)
    if env:
        path = Path(env)
        if not path.is_file():
            raise FileNotFoundError(f"${SOURCE_ENV} names {path}, which is not a file")
        return path
    spec = importlib.util.find_spec("mediapipe")  # located, not imported
    if spec is not None and spec.submodule_search_locations:
        path = Path(list(spec.submodule_search_locations)[0]).parent / WHEEL_MEMBER
        if path.is_file():
            return path
    raise CheckpointError(
        f"no SRC given, ${SOURCE_ENV} is not set and no installed mediapipe ships {WHEEL_MEMBER}: "
        "pip download mediapipe==0.10.14 --no-deps -d DIR and pass the wheel (or the .tflite inside it)"
    )


def convert_face_mesh_checkpoint(src: str | Path | None, dst: str | Path, **options: Any) -> FaceMeshModel:
    """Read ``face_landmark.tflite`` (``src``: the file, a mediapipe wheel, or ``None`` for
    :func:`find_face_mesh_source`) and ``save_pretrained`` model and image processor to ``dst``.

    ``dst`` receives ``config.json`` (with ``auto_map``), ``model.safetensors``,
    ``preprocessor_config.json`` and the remote code, so ``AutoModel/AutoImageProcessor.from_pretrained(dst,
    trust_remote_code=True)`` work without hf-fiqa. Returns the model (eval mode). No options are defined.
    """
    if options:
        raise TypeError(f"convert_face_mesh_checkpoint got unexpected options: {sorted(options)}")
    weights = read_face_mesh_tflite(find_face_mesh_source() if src is None else src)
    model = FaceMeshModel(weights.config)
    missing, unexpected, wrong = compare_state_dicts(model.state_dict(), weights.state_dict)
    if missing or unexpected or wrong:  # the reader and the model disagree: a bug here, not in the file
        raise CheckpointError.mismatch(f"{weights.source}: weights do not fit FaceMeshModel", missing, unexpected, wrong)
    model.load_state_dict(weights.state_dict, strict=True)
    model.eval()
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dst)
    FaceMeshImageProcessor(size=weights.config.image_size, roi_scale=weights.config.roi_scale).save_pretrained(dst)
    return model


def summarize(model: FaceMeshModel) -> str:
    """One line about a converted model, for ``hf-fiqa convert face-mesh``."""
    cfg = model.config
    parameters = sum(p.numel() for p in model.parameters()) / 1e6
    return (f"MediaPipe face mesh, {cfg.num_landmarks} landmarks from {cfg.image_size}x{cfg.image_size} crops, "
            f"stages {cfg.stage_widths} x {cfg.stage_blocks} blocks, {parameters:.2f}M parameters")


__all__ = [
    "SOURCE_ENV",
    "WHEEL_MEMBER",
    "FaceMeshWeights",
    "TFLiteGraph",
    "convert_face_mesh_checkpoint",
    "find_face_mesh_source",
    "read_face_mesh_tflite",
    "read_tflite_bytes",
    "summarize",
]
