"""Losses: BCE on logits, soft Dice over the batch (hand-computed values), their sum, stable gradients."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from nltool.errors import NltoolError
from nltool.training.losses import LossConfigError, RoadLoss, soft_dice_loss

LN3 = math.log(3.0)  # sigmoid(ln 3) = 3/4 exactly


def batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random N×1×H×W logits and a 0/1 target of the same shape."""
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 1, 16, 16, generator=gen) * 3
    target = (torch.rand(2, 1, 16, 16, generator=gen) < 0.3).float()
    return logits, target


def authors_dice_bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The authors' ``dice_bce_loss(batch=True)``: BCELoss on sigmoid + 1 - batch soft Dice (smooth 0)."""
    probs = torch.sigmoid(logits)
    dice = 2 * (target * probs).sum() / (target.sum() + probs.sum())
    return F.binary_cross_entropy(probs, target) + 1 - dice


def test_bce_kind_is_binary_cross_entropy_with_logits() -> None:
    """``bce`` is exactly torch's numerically stable BCE on logits, averaged over pixels."""
    logits, target = batch()
    assert torch.equal(RoadLoss("bce")(logits, target), F.binary_cross_entropy_with_logits(logits, target))


def test_bce_dice_is_bce_plus_dice() -> None:
    """The default ``bce_dice`` is the sum of the two parts."""
    logits, target = batch(1)
    expected = F.binary_cross_entropy_with_logits(logits, target) + soft_dice_loss(logits, target)
    assert RoadLoss()(logits, target) == pytest.approx(expected.item(), abs=1e-6)


def test_bce_dice_matches_the_authors_loss_up_to_the_smoothing_term() -> None:
    """With the authors' smooth = 0, BCE + Dice equals their ``dice_bce_loss``; with eps = 1 it is close."""
    logits, target = batch(2)
    bce = F.binary_cross_entropy_with_logits(logits, target)
    reference = authors_dice_bce(logits, target)
    smooth_zero = bce + soft_dice_loss(logits, target, eps=0.0)
    assert smooth_zero.item() == pytest.approx(reference.item(), abs=1e-5)
    assert RoadLoss()(logits, target).item() == pytest.approx(reference.item(), abs=5e-3)


def test_dice_is_zero_for_a_perfect_confident_prediction() -> None:
    """Large logits of the right sign give Dice loss 0 (eps is in both numerator and denominator)."""
    _, target = batch(3)
    logits = (target * 2 - 1) * 50
    assert soft_dice_loss(logits, target).item() == pytest.approx(0.0, abs=1e-6)


def test_dice_is_near_one_for_a_totally_wrong_prediction() -> None:
    """Confident logits of the wrong sign give Dice loss close to 1."""
    _, target = batch(4)
    logits = (1 - target * 2) * 50
    assert soft_dice_loss(logits, target).item() == pytest.approx(1.0, abs=1e-2)
    assert soft_dice_loss(logits, target, eps=0.0).item() == pytest.approx(1.0, abs=1e-6)


def test_dice_known_value_on_a_hand_computed_example() -> None:
    """p = (3/4, 1/4, 1/2, 1/2), t = (1, 0, 1, 0): Σpt = 5/4, Σp = Σt = 2, loss = 1 - (5/2 + eps)/(4 + eps)."""
    logits = torch.tensor([LN3, -LN3, 0.0, 0.0]).view(1, 1, 2, 2)
    target = torch.tensor([1.0, 0.0, 1.0, 0.0]).view(1, 1, 2, 2)
    assert soft_dice_loss(logits, target).item() == pytest.approx(1 - 3.5 / 5, abs=1e-6)  # eps = 1: 0.3
    assert soft_dice_loss(logits, target, eps=0.0).item() == pytest.approx(1 - 2.5 / 4, abs=1e-6)  # 0.375


def test_dice_pools_the_whole_batch_instead_of_averaging_images() -> None:
    """As the authors' ``batch=True``: image A (t = 1, 1; p = 1/2, 1/2) and B (t = 0, 0; p = 3/4, 3/4)
    pool to 1 - 2·1/(2.5 + 2) = 5/9, not the per-image mean (2/3 + 1)/2 = 5/6."""
    logits = torch.tensor([[0.0, 0.0], [LN3, LN3]]).view(2, 1, 1, 2)
    target = torch.tensor([[1.0, 1.0], [0.0, 0.0]]).view(2, 1, 1, 2)
    assert soft_dice_loss(logits, target, eps=0.0).item() == pytest.approx(5 / 9, abs=1e-6)


def test_empty_batch_predicted_empty_has_no_dice_loss() -> None:
    """A batch without roads, predicted without roads, scores 0 instead of the authors' 0/0."""
    target = torch.zeros(2, 1, 8, 8)
    loss = soft_dice_loss(torch.full_like(target, -100.0), target)
    assert torch.isfinite(loss) and loss.item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("kind", ["bce_dice", "bce"])
@pytest.mark.parametrize("sign", [1.0, -1.0], ids=["right", "wrong"])
def test_gradients_are_finite_for_extreme_logits(kind: str, sign: float) -> None:
    """Logits of ±100 (right or wrong, and an all-background batch) give a finite loss and gradients."""
    _, target = batch(5)
    for tgt in (target, torch.zeros_like(target)):
        logits = ((tgt * 2 - 1) * 100 * sign).requires_grad_()
        loss = RoadLoss(kind)(logits, tgt)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("kind", ["bce_dice", "bce"])
def test_loss_falls_as_logits_move_toward_the_target(kind: str) -> None:
    """Pushing logits toward the target lowers the loss, and so do plain gradient steps."""
    logits, target = batch(6)
    loss_fn = RoadLoss(kind)
    pushed = [loss_fn(logits + step * (target * 2 - 1), target).item() for step in (0.0, 1.0, 2.0, 4.0)]
    assert pushed == sorted(pushed, reverse=True) and pushed[0] > pushed[-1]

    weights = logits.clone().requires_grad_()
    optimizer = torch.optim.SGD([weights], lr=50.0)
    history = []
    for _ in range(5):
        optimizer.zero_grad()
        loss = loss_fn(weights, target)
        loss.backward()
        optimizer.step()
        history.append(loss.item())
    assert all(later < earlier for earlier, later in itertools.pairwise(history))


def test_half_precision_logits_give_a_float32_loss_without_overflow() -> None:
    """Under AMP logits may be float16; sums over many pixels would overflow float16 (max 65504)."""
    target = torch.ones(1, 1, 300, 300)
    logits = torch.full_like(target, 10.0, dtype=torch.float16)
    loss = RoadLoss()(logits, target)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert soft_dice_loss(logits, target).item() == pytest.approx(0.0, abs=1e-4)


def test_unknown_kind_names_the_choices() -> None:
    """A typo in the loss name fails with a ValueError (an nltool error) listing the valid kinds."""
    with pytest.raises(LossConfigError, match=r"unknown loss 'dice'.*bce_dice, bce") as info:
        RoadLoss("dice")  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError) and isinstance(info.value, NltoolError)
