"""PyTorch backend: a checkpoint (nltool ``.pt`` or the authors' ``.th``) on CPU or CUDA."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from nltool.devices import resolve_device
from nltool.inference.backends.base import Backend
from nltool.models import NLLinkNet, Pairwise, load_checkpoint
from nltool.models.probability import ProbabilityModel


class TorchBackend(Backend):
    """Runs :class:`ProbabilityModel` (normalize -> model -> sigmoid) in eval/inference mode."""

    name = "torch"

    def __init__(self, model: NLLinkNet, device: str = "auto", source: str | None = None) -> None:
        self.device = resolve_device(device)
        self.net = ProbabilityModel(model).to(self.device.to_torch()).eval()
        self.source = source
        self.config = model.config

    @classmethod
    def from_checkpoint(
        cls, path: str | os.PathLike[str], *, arch: str | None = None, pairwise: Pairwise | None = None,
        device: str = "auto",
    ) -> TorchBackend:
        """Load a checkpoint (arch needed only for raw state dicts such as the authors' files)."""
        loaded = load_checkpoint(path, arch=arch, pairwise=pairwise)
        return cls(loaded.model, device=device, source=str(path))

    def run(self, batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            image = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device.to_torch())
            return self.net(image).float().cpu().numpy()

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "artifact": self.source, "device": str(self.device),
                "arch": self.config.arch, "pairwise": self.config.pairwise}
