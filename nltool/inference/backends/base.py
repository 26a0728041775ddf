"""The backend interface: RGB 0-255 batches in, road probabilities out, whatever runs the model.

Batches are numpy arrays, so the pipeline around a backend (tiling, TTA, blending) never needs
torch: an ONNX model runs in a process that never imports it.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from nltool.inference.selection import BackendChoice


class Backend(ABC):
    """Runs one artifact. Normalization and the sigmoid live with the artifact, not the caller."""

    name: str = "backend"
    choice: BackendChoice | None = None
    """Why this backend and precision were chosen, when :func:`~nltool.inference.load_backend` chose them."""

    @abstractmethod
    def run(self, batch: np.ndarray) -> np.ndarray:
        """float32 N×3×h×w RGB 0-255 (h, w multiples of 32) -> float32 N×1×h×w probability."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """What runs where: backend name, artifact, device/providers; for reports and logs."""


class TimedBackend(Backend):
    """Wraps a backend and adds up the seconds spent inside it, to tell model time from pipeline
    overhead (the serving summary, metrics and benchmarks report both)."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.name, self.choice = inner.name, inner.choice
        self.seconds = 0.0
        self.images = 0

    def run(self, batch: np.ndarray) -> np.ndarray:
        started = time.perf_counter()
        out = self.inner.run(batch)
        self.seconds += time.perf_counter() - started
        self.images += batch.shape[0]
        return out

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()
