"""TrainConfig: every knob of a training run, with the paper's recipe as defaults, and config files.

A config file (TOML, YAML or JSON; ``--config``) holds any option of ``nltool train`` under its
Python name (``batch_size``; ``batch-size`` works too); options given on the command line win.
Relative paths in a file are relative to the file's folder. The run folder's ``config.json`` is
such a file, with absolute paths, so ``--config RUN/config.json --out NEW`` repeats a run.
"""

from __future__ import annotations

import contextlib
import json
import sys
import types
import typing
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from nltool.devices import AUTO_DEVICE
from nltool.errors import NltoolError
from nltool.models.archs import ARCHS, DEFAULT_ARCH, DEFAULT_PAIRWISE, PAIRWISE_FUNCTIONS, SIZE_MULTIPLE
from nltool.training.schedule import EARLY_STOP_PATIENCE, LR_FACTOR, MIN_LR, PLATEAU_PATIENCE

LOSSES = ("bce_dice", "bce")
CONFIG_SUFFIXES = (".toml", ".yaml", ".yml", ".json")
REQUIRED = ("data", "out")


class TrainConfigError(NltoolError, ValueError):
    """A training option out of range, of the wrong type, unknown, or a config file that cannot be read."""


@dataclass(frozen=True)
class TrainConfig:
    """A training run. Defaults follow the paper and the NL-LinkNet authors' ``train.py``.

    Adam at ``lr`` 3e-4; BCE + soft Dice. An epoch is ``samples_per_epoch`` crops drawn in
    proportion to image area (default: enough to cover the training pixels once, and at least 100
    optimizer steps). After more than ``plateau_patience`` epochs in a row without a lower epoch
    loss the learning rate is multiplied by ``lr_factor`` and the best weights so far are reloaded;
    after more than ``early_stop_patience`` such epochs, or at a plateau with the rate below
    ``min_lr``, training stops. ``max_steps`` is a budget of optimizer steps. ``init`` starts from
    a checkpoint's weights; ``freeze_encoder_steps`` keeps the ResNet34 encoder fixed at first.
    """

    data: Path
    out: Path
    val: Path | None = None
    val_fraction: float = 0.1
    val_every: int | None = None
    arch: str = DEFAULT_ARCH
    pairwise: str = DEFAULT_PAIRWISE
    encoder_weights: str = "imagenet"
    init: Path | None = None
    freeze_encoder_steps: int = 0
    epochs: int = 500
    samples_per_epoch: int | None = None
    max_steps: int | None = None
    crop: int = 1024
    batch_size: int = 4
    accumulate: int = 1
    lr: float = 3e-4
    loss: str = "bce_dice"
    lr_factor: float = LR_FACTOR
    plateau_patience: int = PLATEAU_PATIENCE
    early_stop_patience: int = EARLY_STOP_PATIENCE
    min_lr: float = MIN_LR
    workers: int = 2
    seed: int = 0
    device: str = AUTO_DEVICE
    amp: bool = True
    channels_last: bool = True

    def __post_init__(self) -> None:
        problems = []
        if self.arch not in ARCHS:
            problems.append(f"unknown arch {self.arch!r} (choose {', '.join(ARCHS)})")
        if self.pairwise not in PAIRWISE_FUNCTIONS:
            problems.append(f"unknown pairwise {self.pairwise!r} (choose {', '.join(PAIRWISE_FUNCTIONS)})")
        if self.loss not in LOSSES:
            problems.append(f"unknown loss {self.loss!r} (choose {', '.join(LOSSES)})")
        if self.crop < SIZE_MULTIPLE or self.crop % SIZE_MULTIPLE:
            problems.append(f"crop must be a positive multiple of {SIZE_MULTIPLE}, got {self.crop}")
        if not self.lr > 0:
            problems.append(f"learning rate must be positive, got {self.lr}")
        if not 0 <= self.val_fraction < 1:
            problems.append(f"val fraction must be in [0, 1), got {self.val_fraction}")
        if not 0 < self.lr_factor < 1:
            problems.append(f"lr factor must be in (0, 1), got {self.lr_factor}")
        if not self.min_lr >= 0:
            problems.append(f"min lr must be >= 0, got {self.min_lr}")
        for name in ("batch_size", "accumulate", "epochs", "samples_per_epoch", "max_steps", "val_every"):
            value = getattr(self, name)
            if value is not None and value < 1:
                problems.append(f"{name} must be at least 1, got {value}")
        for name in ("workers", "freeze_encoder_steps", "plateau_patience", "early_stop_patience"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0, got {getattr(self, name)}")
        if problems:
            raise TrainConfigError("; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        """Plain data for config.json and checkpoint metadata; paths absolute, so the file works from anywhere."""
        data = asdict(self)
        return {k: str(v.absolute()) if isinstance(v, Path) else v for k, v in data.items()}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], *, source: str = "options") -> TrainConfig:
        """Build a config from plain data (a parsed file, the command line), checking names and types.

        ``source`` names where the values came from, for error messages.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise TrainConfigError(f"{source}: unknown option(s) {', '.join(unknown)}; the options of "
                                   f"`nltool train` are: {', '.join(sorted(known))}")
        missing = [name for name in REQUIRED if values.get(name) is None]
        if missing:
            raise TrainConfigError(f"{source}: {' and '.join('--' + m for m in missing)} must be given, on the "
                                   "command line or in the --config file")
        hints = typing.get_type_hints(cls)
        return cls(**{name: _coerce(name, value, hints[name], source) for name, value in values.items()})


def load_config_file(path: Path) -> dict[str, Any]:
    """The options in a TOML, YAML or JSON file, names normalized (``-`` -> ``_``), relative paths made
    relative to the file's folder."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in CONFIG_SUFFIXES:
        raise TrainConfigError(f"config file {path} must end in {', '.join(CONFIG_SUFFIXES)} (TOML, YAML or JSON)")
    try:
        text = path.read_text()
    except OSError as exc:
        raise TrainConfigError(f"cannot read config file {path}: {exc}") from exc
    try:
        data = _parse(text, suffix)
    except ValueError as exc:  # every parser's syntax error is a ValueError subclass
        raise TrainConfigError(f"config file {path} is not valid {suffix[1:].upper()}: {exc}") from exc
    if not isinstance(data, dict):
        raise TrainConfigError(f"config file {path} must hold a table of option = value, not {type(data).__name__}")
    values = {str(key).replace("-", "_"): value for key, value in data.items()}
    for name in ("data", "out", "val", "init"):
        if isinstance(values.get(name), str):
            values[name] = path.parent / Path(values[name]).expanduser()
    return values


def resolve_train_config(config_file: Path | None, cli: Mapping[str, Any]) -> TrainConfig:
    """The run's configuration: defaults, then ``config_file``, then the options given on the command line.

    With ``init`` and no ``arch`` anywhere, the arch and pairwise function are the init
    checkpoint's own (an nltool checkpoint records them; an authors' .th needs ``--arch``).
    """
    values: dict[str, Any] = load_config_file(config_file) if config_file is not None else {}
    values.update(cli)
    if values.get("init") is not None and values.get("arch") is None:
        from nltool.models import load_checkpoint

        model_config = load_checkpoint(values["init"]).metadata.config
        values["arch"] = model_config.arch
        values.setdefault("pairwise", model_config.pairwise)
    source = f"config file {config_file} and command line" if config_file is not None else "command line"
    return TrainConfig.from_dict(values, source=source)


def _parse(text: str, suffix: str) -> Any:
    """Parse ``text`` as TOML, YAML or JSON by file suffix."""
    if suffix == ".json":
        return json.loads(text)
    if suffix == ".toml":
        if sys.version_info >= (3, 11):
            import tomllib as toml
        else:  # the same parser, a dependency on Python 3.10
            import tomli as toml
        return toml.loads(text)
    import yaml  # a core dependency (TOML and YAML config files)

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(str(exc)) from exc


def _coerce(name: str, value: Any, hint: Any, source: str) -> Any:
    """``value`` as the type of option ``name`` (``hint``), or a :class:`TrainConfigError` naming both."""
    allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if value is None and type(None) in allowed:
        return None
    kind = next(t for t in allowed if t is not type(None))
    if kind is Path and isinstance(value, (str, Path)):
        return Path(value).expanduser()
    if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind is float and isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
        with contextlib.suppress(ValueError):
            return float(value)
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind in (bool, str) and isinstance(value, kind):
        return value
    expected = {Path: "a path", float: "a number", int: "a whole number", bool: "true or false", str: "a string"}
    raise TrainConfigError(f"{source}: option {name} must be {expected[kind]}"
                           f"{' or left out' if type(None) in allowed else ''}, got {value!r}")
