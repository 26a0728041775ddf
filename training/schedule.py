"""The paper's learning-rate schedule: divide by 5 on an epoch-loss plateau, reload the best, stop early.

As in the authors' training loop: an epoch whose loss is not below the best so far counts towards
the plateau; more than ``plateau_patience`` such epochs in a row reload the best weights and
multiply the rate by ``lr_factor``; more than ``early_stop_patience`` stop training, as does a
rate below ``min_lr``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

Action = Literal["continue", "improved", "reduce_lr", "stop"]


@dataclass
class PlateauSchedule:
    """Decides, once per epoch, what the trainer does next; its state is saved for ``--resume``."""

    lr: float
    lr_factor: float = 0.2
    plateau_patience: int = 3
    early_stop_patience: int = 6
    min_lr: float = 5e-7
    best_loss: float = math.inf
    epochs_without_improvement: int = 0

    def step(self, epoch_loss: float) -> Action:
        """Record one epoch's mean loss; returns what to do (reducing also updates ``lr``)."""
        if epoch_loss < self.best_loss:
            self.best_loss = epoch_loss
            self.epochs_without_improvement = 0
            return "improved"
        self.epochs_without_improvement += 1
        if self.epochs_without_improvement > self.early_stop_patience:
            return "stop"
        if self.epochs_without_improvement > self.plateau_patience:
            if self.lr < self.min_lr:
                return "stop"
            self.lr *= self.lr_factor
            return "reduce_lr"
        return "continue"

    def state_dict(self) -> dict[str, Any]:
        """Plain data for the checkpoint's training state."""
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved."""
        for key, value in state.items():
            setattr(self, key, value)
