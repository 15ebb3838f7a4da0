"""Training configuration: one YAML file per published variant (``hub_configs/``) plus ``key=value`` overrides.

Every key is declared here with its default, so a typo in a config file or an override fails before any
work starts, naming the key and the keys that do exist.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

TASKS = ("iqa", "fiqa", "recognition")


class ConfigError(ValueError):
    """A training config that cannot run; raised before any training work."""


@dataclass
class ModelConfig:
    """Which network to train. ``arch``: maniqa (iqa/fiqa) or iresnet / mobilefacenet (recognition).

    ``preset`` picks a size (``tiny`` or ``full``), ``kwargs`` override config fields of that architecture.
    ``pretrained_backbone`` loads ImageNet weights for MANIQA's ViT through timm (needs network once).
    """

    arch: str = "maniqa"
    preset: str = "full"
    kwargs: dict[str, Any] = field(default_factory=dict)
    pretrained_backbone: bool = False
    init_from: str | None = None  # a saved model folder / Hub id to fine-tune
    head: str = "arcface"  # recognition: arcface | magface
    head_kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class DataConfig:
    """Where examples come from. ``source`` per task:

    - iqa: ``koniq10k`` | ``tid2013`` (``root`` = release folder), ``degradations`` (``root`` = photos or an
      identity folder; label = quality level 5..0 of graded synthetic degradations), ``csv`` (``path`` with
      ``image``/``label`` columns, relative to the file);
    - fiqa: ``pseudo_labels``: ``rows`` (rows.csv of ``hf-fiqa embed``), ``labels`` (parquet of ``hf-fiqa
      pseudo-label``), optional ``embeddings`` (for EDC during evaluation);
    - recognition: ``identity_folder`` (``root``: a labels.csv folder, a CSV, or root/<identity>/<image>).
    """

    source: str = ""
    root: str | None = None
    rows: str | None = None
    labels: str | None = None
    embeddings: str | None = None
    aligned: bool = False  # inputs already are aligned crops: skip detection
    detector_weights: str | None = None
    val_fraction: float = 0.2
    limit: int | None = None  # use only the first N examples (smoke runs)
    degradations: list[str] = field(default_factory=lambda: ["gaussian_blur", "gaussian_noise", "jpeg", "downscale"])
    severities: list[int] = field(default_factory=lambda: [1, 3, 5])
    balanced_sampling: bool = False  # fiqa: sample evenly over label bins (labels are Beta-shaped)
    num_workers: int = 0


@dataclass
class OptimConfig:
    optimizer: str = "adam"  # adam | adamw | sgd
    lr: float = 1e-5
    weight_decay: float = 1e-5
    momentum: float = 0.9
    scheduler: str = "cosine"  # cosine (per step, T_max = t_max or all steps) | step | constant
    t_max: int | None = None
    warmup_steps: int = 0  # linear warmup over the first optimizer steps (cosine then decays to 0 at T_max)
    step_size: int = 1000  # step scheduler: decay every step_size optimizer steps
    gamma: float = 0.1
    grad_clip: float | None = None


@dataclass
class TrainConfig:
    task: str = "iqa"
    name: str = "run"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    output_dir: str = "runs/run"
    seed: int = 0
    batch_size: int = 8
    eval_batch_size: int = 16
    gradient_accumulation_steps: int = 1
    max_steps: int | None = None
    epochs: int = 1
    mixed_precision: str = "no"  # no | bf16 | fp16
    save_every: int = 500
    eval_every: int = 500
    keep_checkpoints: int = 2
    log_every: int = 10
    image_size: int | None = None  # crop side; default: the model's
    resume: str | None = None  # "latest" or a checkpoint folder
    overwrite_output_dir: bool = False
    push_to_hub: bool = False
    hub_model_id: str | None = None
    trackers: list[str] = field(default_factory=lambda: ["tensorboard"])
    progress: bool = True  # the progress bar (main process only)

    # -- loading ----------------------------------------------------------------------------------------------
    @classmethod
    def from_file(cls, path: str | Path | None, overrides: list[str] | None = None) -> "TrainConfig":
        """Load, apply overrides and check everything, including that the data exists."""
        config = cls.parse(path, overrides)
        config.validate()
        return config

    @classmethod
    def from_dict(cls, raw: dict[str, Any], overrides: list[str] | None = None) -> "TrainConfig":
        """A config from a mapping shaped like the YAML files (e.g. one a recipe holds), with overrides; checked
        like :meth:`from_file`."""
        import copy

        tree = copy.deepcopy(raw)
        config = _build(cls, _apply_overrides(tree, overrides), "")
        config.validate()
        return config

    @classmethod
    def parse(cls, path: str | Path | None, overrides: list[str] | None = None) -> "TrainConfig":
        """Load and apply overrides, checking keys and types only."""
        raw: dict[str, Any] = {}
        if path is not None:
            path = Path(path)
            if not path.is_file():
                raise ConfigError(f"config file {path} not found")
            try:
                raw = yaml.safe_load(path.read_text()) or {}
            except yaml.YAMLError as exc:
                raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
            if not isinstance(raw, dict):
                raise ConfigError(f"config file {path} must hold a mapping at the top level")
        return _build(cls, _apply_overrides(raw, overrides), "")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        from ..atomic import atomic_write_text

        atomic_write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))

    # -- checks -----------------------------------------------------------------------------------------------
    def validate(self) -> None:
        def fail(key: str, message: str) -> None:
            raise ConfigError(f"config key {key}: {message}")

        if self.task not in TASKS:
            fail("task", f"must be one of {TASKS}, got {self.task!r}")
        sources = {"iqa": ("koniq10k", "tid2013", "degradations", "csv"), "fiqa": ("pseudo_labels",),
                   "recognition": ("identity_folder",)}[self.task]
        if self.data.source not in sources:
            fail("data.source", f"task {self.task} reads one of {sources}, got {self.data.source!r}")
        if self.data.source == "pseudo_labels":
            for key in ("rows", "labels"):
                value = getattr(self.data, key)
                if not value:
                    fail(f"data.{key}", "is required for pseudo_labels")
                if not Path(value).exists():
                    fail(f"data.{key}", f"{value} does not exist")
        elif self.data.source == "csv":
            if not self.data.root or not Path(self.data.root).is_file():
                fail("data.root", f"CSV file {self.data.root!r} does not exist")
        elif not self.data.root or not Path(self.data.root).exists():
            fail("data.root", f"dataset folder {self.data.root!r} does not exist")
        archs = ("maniqa",) if self.task in ("iqa", "fiqa") else ("iresnet", "mobilefacenet")
        if self.model.arch not in archs:
            fail("model.arch", f"task {self.task} trains one of {archs}, got {self.model.arch!r}")
        if self.model.preset not in ("tiny", "full"):
            fail("model.preset", f"must be tiny or full, got {self.model.preset!r}")
        if self.model.head not in ("arcface", "magface"):
            fail("model.head", f"must be arcface or magface, got {self.model.head!r}")
        if self.mixed_precision not in ("no", "bf16", "fp16"):
            fail("mixed_precision", f"must be no, bf16 or fp16, got {self.mixed_precision!r}")
        if self.optim.optimizer not in ("adam", "adamw", "sgd"):
            fail("optim.optimizer", f"must be adam, adamw or sgd, got {self.optim.optimizer!r}")
        if self.optim.scheduler not in ("cosine", "step", "constant"):
            fail("optim.scheduler", f"must be cosine, step or constant, got {self.optim.scheduler!r}")
        for key in ("batch_size", "eval_batch_size", "gradient_accumulation_steps", "epochs", "save_every",
                    "eval_every", "log_every", "keep_checkpoints"):
            if getattr(self, key) <= 0:
                fail(key, f"must be positive, got {getattr(self, key)}")
        for key, value in (("max_steps", self.max_steps), ("image_size", self.image_size),
                           ("data.limit", self.data.limit), ("optim.t_max", self.optim.t_max),
                           ("optim.step_size", self.optim.step_size), ("optim.lr", self.optim.lr),
                           ("optim.gamma", self.optim.gamma), ("optim.grad_clip", self.optim.grad_clip)):
            if value is not None and value <= 0:
                fail(key, f"must be positive, got {value}")
        for key, value in (("seed", self.seed), ("data.num_workers", self.data.num_workers),
                           ("optim.warmup_steps", self.optim.warmup_steps),
                           ("optim.weight_decay", self.optim.weight_decay), ("optim.momentum", self.optim.momentum)):
            if value < 0:
                fail(key, f"must not be negative, got {value}")
        if self.seed >= 2**31:
            fail("seed", f"must be below 2**31, got {self.seed}")
        if self.task == "iqa" and self.data.source == "degradations":
            from ..data.degradations import DEGRADATIONS, SEVERITIES

            if not self.data.degradations:
                fail("data.degradations", "must name at least one degradation")
            for kind in self.data.degradations:
                if kind not in DEGRADATIONS:
                    fail("data.degradations", f"unknown degradation {kind!r}; choose from {', '.join(DEGRADATIONS)}")
            if not self.data.severities:
                fail("data.severities", "must list at least one severity")
            for severity in self.data.severities:
                if severity not in SEVERITIES:
                    fail("data.severities", f"severity {severity} is not one of {list(SEVERITIES)}")
        try:
            from accelerate.utils import LoggerType

            trackers = tuple(t.value for t in LoggerType)
        except ImportError:  # pragma: no cover
            trackers = tuple(self.trackers)
        for tracker in self.trackers:
            if tracker not in trackers:
                fail("trackers", f"unknown tracker {tracker!r}; choose from {', '.join(trackers)} (or [] for none)")
        if not 0 < self.data.val_fraction < 1:
            fail("data.val_fraction", f"must be in (0, 1), got {self.data.val_fraction}")
        if self.push_to_hub and not self.hub_model_id:
            fail("hub_model_id", "is required with push_to_hub")
        if self.resume not in (None, "latest") and not Path(self.resume).is_dir():
            fail("resume", f"must be 'latest' or a checkpoint folder; {self.resume} does not exist")


def _apply_overrides(raw: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not of the form key=value (e.g. optim.lr=1e-4)")
        _set_dotted(raw, key.strip(), yaml.safe_load(value))
    return raw


def _set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    node = tree
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {key}: {part} is not a section")
    node[parts[-1]] = value


_KEY_HINTS = {  # unknown keys people try, and where that setting really lives
    **dict.fromkeys(("device", "devices", "gpu", "gpus", "cuda", "cpu", "num_processes", "num_gpus", "local_rank",
                     "world_size", "multi_gpu"),
                    "devices and processes are chosen by accelerate, not by the config: `accelerate launch "
                    "[--cpu | --multi_gpu --num_processes N] train.py ...`, `accelerate config`, or "
                    "CUDA_VISIBLE_DEVICES=..."),
    "fp16": "use mixed_precision=fp16", "bf16": "use mixed_precision=bf16",
    **dict.fromkeys(("learning_rate", "lr"), "the learning rate is optim.lr"),
    **dict.fromkeys(("steps", "num_steps", "max_iters", "iterations"), "the step count is max_steps"),
}


def _fail_type(key: str, expected: str, value: Any) -> None:
    kinds = {bool: "a boolean", int: "an integer", float: "a number", str: "text", list: "a list", dict: "a mapping"}
    raise ConfigError(f"config key {key} must be {expected}, got {value!r} ({kinds.get(type(value), type(value).__name__)})")


def _number(value: Any, key: str, integer: bool) -> int | float:
    """A number from YAML, strictly: ints stay ints; text is accepted only when it reads as a number as a whole
    (YAML 1.1 reads ``1e-4`` as text); a float for an int field must be whole (``1e3``), never rounded."""
    expected = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        _fail_type(key, expected, value)
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            number: int | float = int(text) if integer and text.lstrip("+-").isdigit() else float(text)
        except ValueError:
            _fail_type(key, expected, value)
        if isinstance(number, int):
            return number
    else:
        number = value
    if not math.isfinite(number):
        _fail_type(key, f"a finite {'integer' if integer else 'number'}", value)
    if integer:
        if number != int(number):
            _fail_type(key, expected, value)
        return int(number)
    return float(number)


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Check ``value`` against the field's type, naming the key; nothing is converted in a way that loses or
    reshapes the value (4.7 is no integer, "22" is no list, "yes" is no bool)."""
    origin = typing.get_origin(hint)
    optional = origin in (typing.Union, types.UnionType) and type(None) in typing.get_args(hint)
    args = [a for a in typing.get_args(hint) if a is not type(None)] if origin in (typing.Union, types.UnionType) else [hint]
    if value is None:
        if optional:
            return None
        raise ConfigError(f"config key {key} cannot be null")
    scalar = args[0] if len(args) == 1 else None
    if scalar is bool:
        if isinstance(value, bool):
            return value
        _fail_type(key, "true or false", value)
    if scalar in (int, float):
        return _number(value, key, integer=scalar is int)
    if scalar is str:
        if not isinstance(value, str):
            _fail_type(key, "text", value)
        return value
    container = typing.get_origin(scalar)
    if container is list:
        if not isinstance(value, list):
            _fail_type(key, "a list (e.g. [a, b])", value)
        (item,) = typing.get_args(scalar) or (Any,)
        return [value_ if item is Any else _coerce(value_, item, f"{key}[{i}]") for i, value_ in enumerate(value)]
    if container is dict:
        if not isinstance(value, dict):
            _fail_type(key, "a mapping (e.g. {name: value})", value)
        return dict(value)
    return value


def _build(cls: type, raw: dict[str, Any], prefix: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(raw) - set(fields), key=str)
    if unknown:
        names = ", ".join(prefix + str(k) for k in unknown)
        hints = []
        for k in unknown:
            if str(k).lower() in _KEY_HINTS:
                hints.append(f"{prefix}{k}: {_KEY_HINTS[str(k).lower()]}")
            else:
                close = difflib.get_close_matches(str(k), list(fields), n=1)
                if close:
                    hints.append(f"did you mean {prefix}{close[0]}?")
        raise ConfigError(f"unknown config key(s) {names}; " + "".join(h + "; " for h in hints)
                          + f"known keys: {', '.join(prefix + k for k in fields)}")
    values = {}
    for name, value in raw.items():
        sub = fields[name].default_factory if fields[name].default_factory is not dataclasses.MISSING else None
        if sub is not None and dataclasses.is_dataclass(sub):
            if not isinstance(value, dict):
                raise ConfigError(f"config key {prefix}{name} must be a section (mapping), got {value!r}")
            values[name] = _build(sub, value, f"{prefix}{name}.")
        else:
            values[name] = _coerce(value, hints[name], prefix + name)
    return cls(**values)


def describe(config: TrainConfig) -> str:
    return json.dumps(config.to_dict(), indent=1)
