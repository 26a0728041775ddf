"""PyTorch backend: a checkpoint (nltool ``.pt`` or the authors' ``.th``) on CPU or CUDA, in fp32 or
under bf16/fp16 autocast, eager or compiled with inductor (the choices live in :mod:`.torch_options`)."""

from __future__ import annotations

import contextlib
import os
from typing import Any

import numpy as np
import torch

from nltool.devices import resolve_device
from nltool.inference.backends.base import Backend
from nltool.inference.backends.torch_options import (
    COMPILE_DYNAMIC,
    COMPILE_OPTIONS,
    RECOMPILE_LIMIT,
    autocast_dtype,
    point_inductor_cache,
    use_channels_last,
)
from nltool.inference.config import Precision
from nltool.models import NLLinkNet, Pairwise, load_checkpoint
from nltool.models.probability import ProbabilityModel


class TorchBackend(Backend):
    """Runs :class:`ProbabilityModel` (normalize -> model -> sigmoid) in eval/inference mode.

    ``precision`` bf16/fp16 runs under ``torch.autocast`` (fp16 only on CUDA); ``compile`` wraps the
    model in ``torch.compile`` (inductor), whose kernels are cached on disk in nltool's cache folder:
    the first call of each shape compiles (43-54 s for NL34 on 2 CPU cores), a later process loads
    it (5-7 s). On the CPU it adds 7-28% over eager channels_last, nothing for bf16 at batch 8.
    ``channels_last`` overrides the NHWC choice of :func:`use_channels_last` (benchmarks compare both).
    """

    name = "torch"

    def __init__(self, model: NLLinkNet, device: str = "auto", source: str | None = None, *,
                 precision: Precision = "fp32", compile: bool = False,
                 channels_last: bool | None = None) -> None:
        self.device = resolve_device(device)
        self.precision = precision
        dtype = autocast_dtype(precision, self.device.type)
        self.autocast_dtype = None if dtype is None else getattr(torch, dtype)
        self.channels_last = use_channels_last(self.device.type, precision) if channels_last is None else channels_last
        self._torch_device = self.device.to_torch()
        net = ProbabilityModel(model).to(self._torch_device).eval()
        if self.channels_last:
            net = net.to(memory_format=torch.channels_last)
        self.compiled = compile
        self.net = compile_model(net) if compile else net
        self.source = source
        self.config = model.config

    @classmethod
    def from_checkpoint(
        cls, path: str | os.PathLike[str], *, arch: str | None = None, pairwise: Pairwise | None = None,
        device: str = "auto", precision: Precision = "fp32", compile: bool = False,
    ) -> TorchBackend:
        """Load a checkpoint (arch needed only for raw state dicts such as the authors' files)."""
        loaded = load_checkpoint(path, arch=arch, pairwise=pairwise)
        return cls(loaded.model, device=device, source=str(path), precision=precision, compile=compile)

    def run(self, batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode(), self._autocast():
            image = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self._torch_device)
            if self.channels_last:
                image = image.contiguous(memory_format=torch.channels_last)
            return self.net(image).float().cpu().numpy()

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        """``torch.autocast`` at the backend's precision, or nothing for fp32."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "artifact": self.source, "device": str(self.device),
                "arch": self.config.arch, "pairwise": self.config.pairwise,
                "precision": self.precision, "compiled": self.compiled, "channels_last": self.channels_last}


def compile_model(net: torch.nn.Module, dynamic: bool | None = COMPILE_DYNAMIC) -> torch.nn.Module:
    """``torch.compile`` with inductor for inference (the same options on every device), its disk cache
    in nltool's cache folder; compiling happens lazily on the first call of each input shape.
    ``dynamic``: benchmarks pass others than :data:`COMPILE_DYNAMIC` to compare."""
    point_inductor_cache()
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, RECOMPILE_LIMIT)
    return torch.compile(net, backend="inductor",  # type: ignore[return-value]
                         dynamic=dynamic, options=dict(COMPILE_OPTIONS))
