"""Input normalization stored with every model: RGB 0-255 in, the network's input scale out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from nltool.errors import CheckpointError


@dataclass(frozen=True)
class Normalization:
    """Per-channel ``(rgb / 255 - mean) / std``.

    The paper's code feeds ``rgb / 255 * 3.2 - 1.6``, which is mean 0.5 and std 0.3125 on every
    channel (:meth:`paper`); ImageNet statistics fit the same form.
    """

    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @classmethod
    def paper(cls) -> Normalization:
        """The NL-LinkNet / D-LinkNet authors' ``rgb / 255 * 3.2 - 1.6``."""
        return cls(mean=(0.5, 0.5, 0.5), std=(0.3125, 0.3125, 0.3125))

    def affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(scale, shift)``, each 1×3×1×1 float32, with ``normalized = rgb * scale + shift``."""
        mean = torch.tensor(self.mean, dtype=torch.float64).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float64).view(1, 3, 1, 1)
        return (1.0 / (255.0 * std)).float(), (-mean / std).float()

    def apply(self, rgb: torch.Tensor) -> torch.Tensor:
        """Normalize an N×3×H×W float tensor of RGB values in 0-255."""
        scale, shift = self.affine()
        return rgb * scale.to(rgb) + shift.to(rgb)

    def describe(self) -> str:
        """A one-line human description, e.g. for ``nltool info``."""
        if self == Normalization.paper():
            return "rgb / 255 * 3.2 - 1.6 (paper)"
        return f"(rgb / 255 - mean {list(self.mean)}) / std {list(self.std)}"

    def to_dict(self) -> dict[str, Any]:
        """Plain data for checkpoint metadata (loadable with ``weights_only=True``)."""
        return {"mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, data: Any) -> Normalization:
        """Inverse of :meth:`to_dict`; a malformed entry is a :class:`CheckpointError`."""
        try:
            mean = tuple(float(v) for v in data["mean"])
            std = tuple(float(v) for v in data["std"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"checkpoint metadata has a malformed 'normalization' entry: {data!r}") from exc
        if len(mean) != 3 or len(std) != 3 or any(s <= 0 for s in std):
            raise CheckpointError(
                f"checkpoint normalization needs 3 means and 3 positive stds, got mean={mean} std={std}"
            )
        return cls(mean=mean, std=std)
