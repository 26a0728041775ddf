"""Comparing a state dict against what a model expects, so a bad file fails with one clear message."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

_SHOWN = 6  # keys listed per category before "... and N more"


@dataclass(frozen=True)
class StateDictDiff:
    """Keys the model needs but the file lacks, keys the model does not know, and shape clashes."""

    missing: tuple[str, ...]
    unexpected: tuple[str, ...]
    mismatched: tuple[str, ...]  # "key: file (a, b) vs model (c, d)"

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.mismatched)

    def describe(self) -> str:
        """One line per category, each listing the first few keys and how many there are."""
        lines = []
        for label, keys in (
            ("missing keys", self.missing),
            ("unexpected keys", self.unexpected),
            ("shape mismatches", self.mismatched),
        ):
            if keys:
                more = f" ... and {len(keys) - _SHOWN} more" if len(keys) > _SHOWN else ""
                lines.append(f"  {label} ({len(keys)}): {', '.join(keys[:_SHOWN])}{more}")
        return "\n".join(lines)


def diff_state_dict(expected: Mapping[str, torch.Tensor], found: Mapping[str, torch.Tensor]) -> StateDictDiff:
    """Compare ``found`` (from a file) with ``expected`` (a model's ``state_dict()``)."""
    missing = tuple(k for k in expected if k not in found)
    unexpected = tuple(k for k in found if k not in expected)
    mismatched = tuple(
        f"{k}: file {tuple(found[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected
        if k in found and tuple(found[k].shape) != tuple(expected[k].shape)
    )
    return StateDictDiff(missing, unexpected, mismatched)
