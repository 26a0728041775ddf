"""Choosing the torch device from a user's ``auto|cpu|cuda[:N]`` option, with a clear error."""

from __future__ import annotations

import torch

from nltool.errors import BackendError


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` is the first GPU when one is visible, else the CPU; ``cuda`` without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise BackendError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise BackendError(f"device {device!r} was requested but no CUDA GPU is visible; use --device cpu")
    if resolved.type not in ("cpu", "cuda"):
        raise BackendError(f"device {device!r} is not supported; use auto, cpu, cuda or cuda:N")
    return resolved
