"""Test-time augmentation: flips/rotations (the dihedral group D4) and scales, each exactly undone.

Works on numpy arrays (no torch), and runs every transform of a batch that keeps its shape in one
backend call: D4 on a square tile is one batch of 8 tiles instead of 8 calls of one, which is
what onnxruntime and OpenVINO run fastest on a CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from nltool.inference.config import TTAMode
from nltool.models.archs import SIZE_MULTIPLE


@dataclass(frozen=True)
class D4Transform:
    """``rot90(k) ∘ hflip^flip`` on the last two axes of N×C×H×W arrays."""

    k: int
    flip: bool

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Transform an input batch (a view where numpy can)."""
        if self.flip:
            x = x[..., ::-1]
        return np.rot90(x, self.k, axes=(-2, -1)) if self.k else x

    def invert(self, y: np.ndarray) -> np.ndarray:
        """Map a prediction on the transformed batch back onto the original pixel grid."""
        if self.k:
            y = np.rot90(y, -self.k, axes=(-2, -1))
        return y[..., ::-1] if self.flip else y

    def shape(self, height: int, width: int) -> tuple[int, int]:
        """The (height, width) a height×width input has after this transform."""
        return (width, height) if self.k % 2 else (height, width)


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


def _sample_positions(source: int, target: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices (lower, upper) and upper weights of bilinear sampling from ``source`` to ``target``
    pixels with half-pixel centres (``align_corners=False``, as torch's ``interpolate``)."""
    scale = np.float32(source / target)
    position = np.maximum((np.arange(target, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5), 0)
    lower = position.astype(np.int64)
    upper = np.minimum(lower + 1, source - 1)
    return lower, upper, (position - lower).astype(np.float32)


def resize_bilinear(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """N×C×H×W float32 resized to ``size`` bilinearly (separable; no antialiasing, like torch's
    ``interpolate(mode="bilinear", align_corners=False)``)."""
    if tuple(x.shape[-2:]) == size:
        return x
    rows_lo, rows_hi, row_w = _sample_positions(x.shape[-2], size[0])
    cols_lo, cols_hi, col_w = _sample_positions(x.shape[-1], size[1])
    rows = x[..., rows_lo, :] * (1 - row_w)[:, None] + x[..., rows_hi, :] * row_w[:, None]
    return (rows[..., cols_lo] * (1 - col_w) + rows[..., cols_hi] * col_w).astype(np.float32, copy=False)


def _groups(transforms: tuple[D4Transform, ...], height: int, width: int) -> list[list[D4Transform]]:
    """Transforms grouped by the shape they produce, so each group runs as one batch."""
    groups: dict[tuple[int, int], list[D4Transform]] = {}
    for transform in transforms:
        groups.setdefault(transform.shape(height, width), []).append(transform)
    return list(groups.values())


def predict_with_tta(
    batch: np.ndarray,
    run: Callable[[np.ndarray], np.ndarray],
    tta: TTAMode,
    scales: tuple[float, ...] = (1.0,),
) -> np.ndarray:
    """Average of ``run`` over every (scale, transform) pair, each inverted back to ``batch``'s grid.

    ``batch`` is float32 N×3×H×W RGB 0-255, ``run`` returns N×1×h×w probabilities; the result is
    N×1×H×W float32. Inputs are resized bilinearly to ``scaled_size`` and probabilities resized back
    the same way. Transforms that give the same shape go to ``run`` together as one batch.
    """
    n, height, width = batch.shape[0], *batch.shape[-2:]
    total = np.zeros((n, 1, height, width), dtype=np.float32)
    count = 0
    for scale in scales:
        scaled = resize_bilinear(batch, scaled_size(height, width, scale))
        for group in _groups(TRANSFORMS[tta], *scaled.shape[-2:]):
            stacked = np.concatenate([transform.apply(scaled) for transform in group]) if len(group) > 1 \
                else np.ascontiguousarray(group[0].apply(scaled))
            probs = run(stacked)
            if probs.shape != (stacked.shape[0], 1, *stacked.shape[-2:]):
                raise ValueError(f"the model answered a batch of shape {stacked.shape} with shape {probs.shape}, "
                                 f"expected {(stacked.shape[0], 1, *stacked.shape[-2:])}")
            for i, transform in enumerate(group):
                total += resize_bilinear(transform.invert(probs[i * n:(i + 1) * n]), (height, width))
                count += 1
    return total / np.float32(count)
