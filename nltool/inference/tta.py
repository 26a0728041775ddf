"""Test-time augmentation: flips/rotations (the dihedral group D4) and scales, each exactly undone."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from nltool.inference.config import TTAMode
from nltool.models.archs import SIZE_MULTIPLE


@dataclass(frozen=True)
class D4Transform:
    """``rot90(k) ∘ hflip^flip`` on the last two axes of N×C×H×W tensors."""

    k: int
    flip: bool

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Transform an input batch."""
        if self.flip:
            x = torch.flip(x, dims=(-1,))
        return torch.rot90(x, self.k, dims=(-2, -1)) if self.k else x

    def invert(self, y: torch.Tensor) -> torch.Tensor:
        """Map a prediction on the transformed batch back onto the original pixel grid."""
        if self.k:
            y = torch.rot90(y, -self.k, dims=(-2, -1))
        return torch.flip(y, dims=(-1,)) if self.flip else y


IDENTITY = D4Transform(0, False)
TRANSFORMS: dict[str, tuple[D4Transform, ...]] = {
    "none": (IDENTITY,),
    # identity, horizontal flip, vertical flip (= rot180 ∘ hflip), both flips (= rot180)
    "flip": (IDENTITY, D4Transform(0, True), D4Transform(2, True), D4Transform(2, False)),
    "d4": tuple(D4Transform(k, flip) for flip in (False, True) for k in range(4)),
}


def scaled_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """``scale`` times the size, each side rounded to the nearest multiple of 32 (ties up; at least 32)."""
    def side(n: int) -> int:
        return max(SIZE_MULTIPLE, int(n * scale / SIZE_MULTIPLE + 0.5) * SIZE_MULTIPLE)

    return side(height), side(width)


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == size:
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def predict_with_tta(
    batch: torch.Tensor,
    run: Callable[[torch.Tensor], torch.Tensor],
    tta: TTAMode,
    scales: tuple[float, ...] = (1.0,),
) -> torch.Tensor:
    """Average of ``run`` over every (scale, transform) pair, each inverted back to ``batch``'s grid.

    ``batch`` is N×3×H×W RGB 0-255, ``run`` returns N×1×h×w probabilities; the result is N×1×H×W.
    Inputs are resized bilinearly to ``scaled_size`` and probabilities resized back the same way.
    """
    height, width = batch.shape[-2:]
    total: torch.Tensor | None = None
    count = 0
    for scale in scales:
        scaled = _resize(batch, scaled_size(height, width, scale))
        for transform in TRANSFORMS[tta]:
            prob = transform.invert(run(transform.apply(scaled)))
            prob = _resize(prob, (height, width))
            total = prob if total is None else total + prob
            count += 1
    assert total is not None  # scales and transforms are never empty (PipelineConfig checks)
    return total / count
