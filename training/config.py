"""TrainConfig: every knob of a training run, with the paper's recipe as defaults."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from nltool.errors import NltoolError
from nltool.models.archs import ARCHS, DEFAULT_ARCH, DEFAULT_PAIRWISE, PAIRWISE_FUNCTIONS, SIZE_MULTIPLE

LOSSES = ("bce_dice", "bce")


class TrainConfigError(NltoolError, ValueError):
    """A training option out of range."""


@dataclass(frozen=True)
class TrainConfig:
    """A training run. Defaults follow the paper and the authors' code.

    Adam at ``lr`` 3e-4; BCE + soft Dice; after ``plateau_patience`` epochs in a row without a lower
    epoch loss the learning rate is divided by ``1 / lr_factor`` (5) and the best weights so far are
    reloaded; after ``early_stop_patience`` such epochs, or once the rate falls below ``min_lr``,
    training stops. ``max_steps`` caps optimizer steps for short runs.
    """

    data: Path
    out: Path
    val: Path | None = None
    val_fraction: float = 0.1
    arch: str = DEFAULT_ARCH
    pairwise: str = DEFAULT_PAIRWISE
    encoder_weights: str = "imagenet"
    epochs: int = 180
    max_steps: int | None = None
    crop: int = 1024
    batch_size: int = 4
    lr: float = 3e-4
    loss: str = "bce_dice"
    lr_factor: float = 0.2
    plateau_patience: int = 3
    early_stop_patience: int = 6
    min_lr: float = 5e-7
    workers: int = 2
    seed: int = 0
    device: str = "auto"
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
        if self.batch_size < 1:
            problems.append(f"batch size must be at least 1, got {self.batch_size}")
        if not self.lr > 0:
            problems.append(f"learning rate must be positive, got {self.lr}")
        if self.epochs < 1 or (self.max_steps is not None and self.max_steps < 1):
            problems.append("epochs and max steps must be at least 1")
        if not 0 <= self.val_fraction < 1:
            problems.append(f"val fraction must be in [0, 1), got {self.val_fraction}")
        if not 0 < self.lr_factor < 1:
            problems.append(f"lr factor must be in (0, 1), got {self.lr_factor}")
        if self.workers < 0:
            problems.append(f"workers must be >= 0, got {self.workers}")
        if problems:
            raise TrainConfigError("; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        """Plain data for config.json and checkpoint metadata."""
        data = asdict(self)
        return {k: str(v) if isinstance(v, Path) else v for k, v in data.items()}
