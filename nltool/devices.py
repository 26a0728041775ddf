"""Choosing the torch device from a user's ``auto|cpu|cuda[:N]`` option, and the TF32 switches.

The decision (:func:`choose_device`) is a pure function of what is visible, so it is tested on
machines without a GPU; :func:`resolve_device` only asks torch what is visible. ``cuda`` always
becomes ``cuda:<index>``: torch calls such as ``torch.cuda.set_device`` and onnxruntime's
``device_id`` need the index, and a bare ``cuda`` would silently mean GPU 0. Importing this module
does not import torch (the ONNX path runs without it); asking torch what is visible does.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from nltool.errors import BackendError

if TYPE_CHECKING:
    import torch

AUTO_DEVICE = "auto"
"""The device option's default: CUDA if visible, else the CPU."""
DEVICE_HINT = "use auto, cpu, cuda or cuda:N"
_DEVICE_NAME = re.compile(r"(?P<type>cpu|cuda)(?::(?P<index>\d+))?")


@dataclass(frozen=True)
class Device:
    """A resolved device: the CPU, or one CUDA GPU with its index (``str()`` is torch's spelling)."""

    type: Literal["cpu", "cuda"]
    index: int | None = None

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def to_torch(self) -> torch.device:
        """The same device as a ``torch.device`` (imports torch)."""
        import torch

        return torch.device(str(self))


CPU = Device("cpu")


def choose_device(device: str, *, cuda_count: int, current: int = 0) -> Device:
    """The device ``device`` names when ``cuda_count`` GPUs are visible and ``current`` is torch's current one.

    ``auto`` is the current GPU when there is one, else the CPU; ``cuda`` is ``cuda:<current>``;
    ``cuda:N`` must name a visible GPU. Every CUDA result carries its index.
    """
    requested = ("cuda" if cuda_count else "cpu") if device == "auto" else device
    match = _DEVICE_NAME.fullmatch(requested.strip())
    if match is None:
        raise BackendError(f"device {device!r} is not supported; {DEVICE_HINT}")
    if match["type"] == "cpu":
        if match["index"] not in (None, "0"):
            raise BackendError(f"device {device!r} is not supported; {DEVICE_HINT}")
        return CPU
    if cuda_count == 0:
        raise BackendError(f"device {device!r} was requested but no CUDA GPU is visible; use --device cpu")
    index = current if match["index"] is None else int(match["index"])
    if not 0 <= index < cuda_count:
        raise BackendError(f"device {device!r}: only {cuda_count} CUDA GPU(s) are visible "
                           f"(cuda:0 to cuda:{cuda_count - 1}); check CUDA_VISIBLE_DEVICES")
    return Device("cuda", index)


def visible_cuda(need_current: bool = True) -> tuple[int, int]:
    """(CUDA GPUs visible, torch's current GPU index); CUDA is initialised only when ``need_current``
    and a GPU is visible (a CPU worker on a GPU host should not create a CUDA context)."""
    import torch

    cuda_count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return cuda_count, torch.cuda.current_device() if cuda_count and need_current else 0


def resolve_device(device: str = AUTO_DEVICE) -> Device:
    """:func:`choose_device` with what torch sees here (``cpu`` without importing torch)."""
    if device.strip() == "cpu":
        return CPU
    cuda_count, current = visible_cuda(need_current=device in ("auto", "cuda"))
    return choose_device(device, cuda_count=cuda_count, current=current)


@dataclass(frozen=True)
class TF32:
    """PyTorch's two TF32 switches: cuBLAS matmuls and cuDNN convolutions (on by default)."""

    matmul: bool
    cudnn: bool


TF32_OFF = TF32(matmul=False, cudnn=False)
"""True FP32 everywhere: what a parity reference runs with (TensorRT FP32 engines are built without TF32)."""


def read_tf32() -> TF32:
    """The switches now (legacy ``allow_tf32`` API: torch 2.14 errors when the two APIs are mixed)."""
    import torch

    return TF32(matmul=torch.backends.cuda.matmul.allow_tf32, cudnn=torch.backends.cudnn.allow_tf32)


def apply_tf32(state: TF32) -> None:
    """Set both switches."""
    import torch

    torch.backends.cuda.matmul.allow_tf32 = state.matmul
    torch.backends.cudnn.allow_tf32 = state.cudnn


@contextmanager
def tf32_state(state: TF32) -> Iterator[TF32]:
    """Run the block with ``state`` and restore the previous switches afterwards (yields them)."""
    previous = read_tf32()
    apply_tf32(state)
    try:
        yield previous
    finally:
        apply_tf32(previous)
