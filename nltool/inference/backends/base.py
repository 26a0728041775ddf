"""The backend interface: RGB 0-255 batches in, road probabilities out, whatever runs the model."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch


class Backend(ABC):
    """Runs one artifact. Normalization and the sigmoid live with the artifact, not the caller."""

    name: str = "backend"

    @abstractmethod
    def run(self, batch: torch.Tensor) -> torch.Tensor:
        """float32 N×3×h×w RGB 0-255 (h, w multiples of 32) -> float32 N×1×h×w probability, on CPU."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """What runs where: backend name, artifact, device/providers; for reports and logs."""
