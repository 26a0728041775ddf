"""Road losses: BCE plus soft Dice over the batch (the authors' ``dice_bce_loss``), or BCE alone.

Models return logits (no sigmoid inside), so BCE is computed from logits, which stays finite for
any logit, where the authors' ``nn.BCELoss`` on sigmoid outputs needs clamping.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nltool.errors import NltoolError

LossKind = Literal["bce_dice", "bce"]
LOSS_KINDS: tuple[str, ...] = get_args(LossKind)


class LossConfigError(NltoolError, ValueError):
    """An unknown loss kind."""


def soft_dice_loss(logits: Tensor, target: Tensor, eps: float = 1.0) -> Tensor:
    """``1 - (2·Σ p·t + eps) / (Σ p + Σ t + eps)``, ``p = sigmoid(logits)``, sums over the whole batch.

    This is the authors' ``soft_dice_coeff`` with ``batch=True`` (yswang1717/NLLinkNet and D-LinkNet
    ``loss.py``): one Dice over all pixels of all images, not a mean of per-image Dice values, so an
    image without roads does not dominate. The authors use ``smooth = 0.0``, which is 0/0 when a
    batch has no road and predicts none; ``eps`` = 1 (one pixel's worth, negligible against the
    thousands of pixels in a batch) keeps it finite and leaves a perfect prediction at exactly 0.
    Computed in float32 so half-precision (AMP) logits cannot overflow the sums.
    """
    probs = torch.sigmoid(logits.float())
    target = target.float()
    intersection = (probs * target).sum()
    return 1.0 - (2.0 * intersection + eps) / (probs.sum() + target.sum() + eps)


class RoadLoss(nn.Module):
    """The loss on logits: ``bce_dice`` (default, the authors' code) = BCE + soft Dice; ``bce`` = BCE alone.

    BCE is ``binary_cross_entropy_with_logits``, averaged over all pixels of the batch.
    """

    def __init__(self, kind: LossKind = "bce_dice") -> None:
        """Choose the loss; an unknown ``kind`` raises :class:`LossConfigError` naming the choices."""
        super().__init__()
        if kind not in LOSS_KINDS:
            raise LossConfigError(f"unknown loss {kind!r}: choose one of {', '.join(LOSS_KINDS)}")
        self.kind = kind

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        """The scalar loss of ``logits`` (N×1×H×W, before sigmoid) against a 0/1 ``target`` of that shape."""
        bce = F.binary_cross_entropy_with_logits(logits.float(), target.float())
        if self.kind == "bce":
            return bce
        return bce + soft_dice_loss(logits, target)

    def extra_repr(self) -> str:
        """Show the kind when the module is printed."""
        return f"kind={self.kind!r}"
