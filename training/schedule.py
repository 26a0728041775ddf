"""The paper's learning-rate schedule: divide by 5 on an epoch-loss plateau, reload the best, stop early.

As in the NL-LinkNet authors' ``train.py`` (yswang1717/NLLinkNet): an epoch whose mean training
loss is not below the best so far counts towards the plateau; more than ``plateau_patience`` (5)
such epochs in a row reload the best weights and multiply the rate by ``lr_factor`` (0.2); more
than ``early_stop_patience`` (8) stop training, as does a plateau reached with the rate already
below ``min_lr`` (5e-6). The D-LinkNet code it comes from used 3, 6 and 5e-7.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

Action = Literal["continue", "improved", "reduce_lr", "stop"]
StopReason = Literal["early_stop", "min_lr"]

PLATEAU_PATIENCE = 5
EARLY_STOP_PATIENCE = 8
MIN_LR = 5e-6
LR_FACTOR = 0.2


@dataclass
class PlateauSchedule:
    """Decides, once per epoch, what the trainer does next; its state is saved for ``--resume``."""

    lr: float
    lr_factor: float = LR_FACTOR
    plateau_patience: int = PLATEAU_PATIENCE
    early_stop_patience: int = EARLY_STOP_PATIENCE
    min_lr: float = MIN_LR
    best_loss: float = math.inf
    epochs_without_improvement: int = 0
    stop_reason: StopReason | None = None

    def step(self, epoch_loss: float) -> Action:
        """Record one epoch's mean loss; returns what to do (reducing also updates ``lr``).

        On ``"stop"``, :attr:`stop_reason` says which rule fired.
        """
        if epoch_loss < self.best_loss:
            self.best_loss = epoch_loss
            self.epochs_without_improvement = 0
            return "improved"
        self.epochs_without_improvement += 1
        if self.epochs_without_improvement > self.early_stop_patience:
            self.stop_reason = "early_stop"
            return "stop"
        if self.epochs_without_improvement > self.plateau_patience:
            if self.lr < self.min_lr:
                self.stop_reason = "min_lr"
                return "stop"
            self.lr *= self.lr_factor
            return "reduce_lr"
        return "continue"

    def describe_stop(self) -> str:
        """Why :meth:`step` said stop, in the words of the options that control it."""
        if self.stop_reason == "early_stop":
            return (f"the epoch loss did not improve for {self.epochs_without_improvement} epochs "
                    f"(more than --early-stop-patience {self.early_stop_patience})")
        return (f"the loss reached a plateau with the lr at {self.lr:.2e}, below --min-lr {self.min_lr:.0e}")

    def state_dict(self) -> dict[str, Any]:
        """Plain data for the checkpoint's training state."""
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved."""
        for key, value in state.items():
            setattr(self, key, value)
