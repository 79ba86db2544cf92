"""The training configuration: one dataclass, filled from defaults < a YAML file < command-line flags.

The defaults are the thesis recipe (DESIGN §4): SGD lr 0.1, momentum 0.9, weight decay 5e-4, batch 128,
300 epochs, lr x0.1 at epochs 150 and 225. Every field is also a flag (``--batch-size``, ``--nesterov`` ...),
generated from the dataclass so the two never drift apart.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from pathlib import Path

import yaml

from tam.amp import AMP_MODES
from tam.errors import UserError, check_range
from tam.layers.registry import attention_kinds
from tam.presets import PRESETS, apply_preset, describe_presets

SCHEDULES = ("step", "cosine")
DTYPES = ("float32", "float64")

# Numeric keys: (key, lowest, highest); an int bound means the key is an integer. Padding beyond an image's
# side only adds zeros (and memory: --crop-padding 100000 would ask for terabytes).
MAX_CROP_PADDING = 64
NUMBER_RANGES = (
    ("epochs", 1, None), ("batch_size", 1, None), ("heads", 1, None), ("log_interval", 1, None),
    ("limit_train", 1, None), ("limit_test", 1, None), ("crop_padding", 0, MAX_CROP_PADDING), ("seed", 0, 2**32 - 1),
    ("momentum", 0.0, 1.0), ("weight_decay", 0.0, None), ("warmup_epochs", 0.0, None), ("label_smoothing", 0.0, 1.0),
)

# Keys a resumed run may change: where and how it runs, and how long (epochs may be extended); where the data
# lies (its content is compared by fingerprint).
# Everything else shapes the trajectory, so a resume with a different value is refused.
RESUMABLE_KEYS = frozenset({"epochs", "out", "data", "device", "cache_dir", "log_interval", "tensorboard", "compile",
                            "keep_weights"})


@dataclasses.dataclass
class TrainConfig:
    """Everything that defines a training run. Help texts become the ``--flag`` help."""

    data: str = dataclasses.field(default="", metadata={"help": "dataset source (archive/folder) or prepared cache"})
    cache_dir: str | None = dataclasses.field(default=None, metadata={"help": "where to keep the prepared cache"})
    limit_train: int | None = dataclasses.field(
        default=None, metadata={"help": "train on a fixed class-balanced subset of N images"})
    limit_test: int | None = dataclasses.field(
        default=None, metadata={"help": "test on a fixed class-balanced subset of N images"})
    final_test_full: bool = dataclasses.field(
        default=False, metadata={"help": "test the final model on the whole test split (each epoch's test stays "
                                         "on --limit-test)"})
    augment: bool = dataclasses.field(
        default=True, metadata={"help": "the dataset's random training augmentation (off: Tiny-ImageNet still centre-crops)"})
    crop_padding: int = dataclasses.field(
        default=4, metadata={"help": "zero padding of the CIFAR random crop, in pixels (0: flips only)"})

    model: str = dataclasses.field(default="preresnet56", metadata={"help": "backbone name, e.g. preresnet20"})
    attention: str = dataclasses.field(default="none", metadata={"help": "attention kind (tam models lists them)"})
    heads: int = dataclasses.field(default=1, metadata={"help": "attention heads"})
    attention_blocks: list[int] | None = dataclasses.field(
        default=None, metadata={"help": "attention blocks per stage, e.g. 0,1,1 (model default if unset)"})
    attention_options: dict = dataclasses.field(
        default_factory=dict,
        metadata={"help": "more attention options as key=value,... (embed_channels, normalization, geometry, ...)"})
    preset: str | None = dataclasses.field(
        default=None, metadata={"help": "conventions of a published implementation for the model and its "
                                        f"attention: {describe_presets()}"})

    epochs: int = dataclasses.field(default=300, metadata={"help": "epochs to train"})
    batch_size: int = dataclasses.field(default=128, metadata={"help": "global batch size (split across ranks)"})
    lr: float = dataclasses.field(default=0.1, metadata={"help": "peak learning rate"})
    momentum: float = dataclasses.field(default=0.9, metadata={"help": "SGD momentum"})
    nesterov: bool = dataclasses.field(default=False, metadata={"help": "Nesterov momentum"})
    weight_decay: float = dataclasses.field(default=5e-4, metadata={"help": "SGD weight decay"})
    decay_norm_and_bias: bool = dataclasses.field(
        default=True, metadata={"help": "weight decay on norm scales/shifts and biases too (off: weights only)"})
    schedule: str = dataclasses.field(default="step", metadata={"help": "|".join(SCHEDULES)})
    milestones: list[int] = dataclasses.field(
        default_factory=lambda: [150, 225], metadata={"help": "epochs where the step schedule multiplies lr by gamma"})
    gamma: float = dataclasses.field(default=0.1, metadata={"help": "step schedule factor"})
    warmup_epochs: float = dataclasses.field(default=0.0, metadata={"help": "linear warm-up from 0, in epochs"})
    label_smoothing: float = dataclasses.field(default=0.0, metadata={"help": "cross-entropy label smoothing"})
    seed: int = dataclasses.field(default=0, metadata={"help": "seed of the model init and the batch order"})

    device: str = dataclasses.field(default="auto", metadata={"help": "auto|cpu|cuda|cuda:N"})
    channels_last: bool = dataclasses.field(default=True, metadata={"help": "channels_last memory format"})
    amp: str = dataclasses.field(default="none", metadata={"help": "autocast dtype: " + "|".join(AMP_MODES)})
    dtype: str = dataclasses.field(
        default="float32", metadata={"help": "weights and compute: float32, or float64 for equivalence checks"})
    compile: bool = dataclasses.field(default=False, metadata={"help": "torch.compile the model"})
    sync_bn: bool = dataclasses.field(default=False, metadata={"help": "synchronise BatchNorm statistics across ranks"})

    out: str = dataclasses.field(default="runs/train", metadata={"help": "run folder (checkpoint, metrics, results)"})
    log_interval: int = dataclasses.field(
        default=50, metadata={"help": "steps between progress-bar updates (the only per-step host syncs)"})
    tensorboard: bool = dataclasses.field(default=False, metadata={"help": "also write TensorBoard events"})
    keep_weights: list[int] = dataclasses.field(
        default_factory=list,
        metadata={"help": "epochs whose model weights to keep as weights/epoch<E>.pt, e.g. 0,1,2,4 (0: at init)"})

    def __post_init__(self) -> None:
        choices = (("attention", attention_kinds(include_none=True)), ("schedule", SCHEDULES), ("amp", AMP_MODES),
                   ("dtype", DTYPES))
        for key, allowed in choices:
            if getattr(self, key) not in allowed:
                raise UserError(f"{key}: {getattr(self, key)!r} is not one of {', '.join(allowed)}")
        for key, low, high in NUMBER_RANGES:
            value = getattr(self, key)
            if value is not None:
                check_range(key, value, low=low, high=high, integer=isinstance(low, int))
        for key in ("lr", "gamma"):
            check_range(key, getattr(self, key), low=0, low_open=True)
        for key, values in (("milestones", self.milestones), ("keep_weights", self.keep_weights),
                            ("attention_blocks", self.attention_blocks or [])):
            for value in values:
                check_range(key, value, low=0, integer=True)
        if self.warmup_epochs > self.epochs:
            raise UserError(f"warmup_epochs: {self.warmup_epochs} is longer than the run ({self.epochs} epochs)")
        if self.nesterov and self.momentum == 0:
            raise UserError("nesterov: needs a momentum above 0")
        if not self.label_smoothing < 1.0:
            raise UserError(f"label_smoothing: must be below 1, got {self.label_smoothing}")
        if self.preset is not None:
            self._check_preset()

    def _check_preset(self) -> None:
        """Refuse an unknown preset, or options it contradicts, before any data is prepared."""
        if self.preset not in PRESETS:
            raise UserError(f"preset: {self.preset!r} is not one of {', '.join(PRESETS)}")
        kind = None if self.attention == "none" else self.attention
        options = {"heads": self.heads, **self.attention_options} if kind else {}
        try:
            apply_preset(self.preset, options, model=self.model, kind=kind)
        except ValueError as error:
            raise UserError(str(error)) from None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def digest(self) -> str:
        """A short hash of the keys that shape the trajectory (all but ``RESUMABLE_KEYS``)."""
        shaping = {k: v for k, v in sorted(self.to_dict().items()) if k not in RESUMABLE_KEYS}
        return hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:16]


def field_types() -> dict[str, typing.Any]:
    return typing.get_type_hints(TrainConfig)


def parse_value(key: str, value: typing.Any, source: str) -> typing.Any:
    """Convert ``value`` (from YAML or a flag string) to the type of field ``key``; ``source`` names where it came
    from for the error message."""
    kind = field_types()[key]
    optional = typing.get_origin(kind) in (typing.Union, types.UnionType) and type(None) in typing.get_args(kind)
    if optional:
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            return None
    origin = typing.get_origin(kind) or kind
    try:
        if origin is list:
            items = value.split(",") if isinstance(value, str) else list(value)
            return [int(item) for item in items]
        if origin is dict:
            if isinstance(value, dict):
                return dict(value)
            pairs = [item.split("=", 1) for item in value.split(",") if item]
            return {k.strip(): yaml.safe_load(v) for k, v in pairs}
        if origin is bool:
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("1", "true", "yes", "on"):
                return True
            if str(value).lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if origin is int and isinstance(value, float) and not value.is_integer():
            raise ValueError(value)
        return origin(value)
    except (TypeError, ValueError):
        raise UserError(f"{source}: {key}: cannot read {value!r} as {kind}") from None


def from_dict(values: dict, source: str, base: TrainConfig | None = None) -> TrainConfig:
    """A config with ``values`` applied over ``base`` (the defaults when None); unknown keys are refused."""
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise UserError(f"{source}: unknown key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(known))}")
    merged = (base or TrainConfig()).to_dict()
    merged.update({key: parse_value(key, value, source) for key, value in values.items()})
    try:
        return TrainConfig(**merged)
    except UserError as error:
        raise UserError(f"{source}: {error}") from None


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    try:
        values = yaml.safe_load(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text file (YAML expected)") from None
    except yaml.YAMLError as error:
        raise UserError(f"{path}: not valid YAML: {error}") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise UserError(f"{path}: expected a mapping of config keys, got {type(values).__name__}")
    return values


def to_yaml(config: TrainConfig) -> str:
    return yaml.safe_dump(config.to_dict(), sort_keys=False)


def incompatible_keys(stored: dict, current: TrainConfig) -> list[str]:
    """Keys where ``current`` differs from the ``stored`` config of a checkpoint, as 'key: old -> new' lines,
    ignoring ``RESUMABLE_KEYS``. A key the stored config lacks (written before the key existed) counts as its
    default, which is what that run used."""
    now = current.to_dict()
    stored = {**TrainConfig().to_dict(), **stored}
    keys = sorted((set(stored) | set(now)) - RESUMABLE_KEYS)
    return [f"{key}: {stored.get(key)!r} -> {now.get(key)!r}" for key in keys if stored.get(key) != now.get(key)]
