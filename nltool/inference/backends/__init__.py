"""Backends that run artifacts, and the choice of backend from the artifact's file type."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from nltool.errors import BackendError
from nltool.inference.backends.base import Backend
from nltool.models import Pairwise

if TYPE_CHECKING:
    from nltool.inference.backends.onnxruntime_backend import TensorRTProviderSettings

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".th")
ONNX_SUFFIXES = (".onnx",)
ENGINE_SUFFIXES = (".plan", ".engine")


def load_backend(
    artifact: str | os.PathLike[str],
    *,
    device: str = "auto",
    arch: str | None = None,
    pairwise: Pairwise | None = None,
    ort_tensorrt: TensorRTProviderSettings | None = None,
) -> Backend:
    """The backend for ``artifact``: PyTorch for checkpoints, onnxruntime for ONNX, TensorRT for engines.

    ``device`` is ``auto``, ``cpu``, ``cuda`` (the current GPU) or ``cuda:N``. ``arch``/``pairwise``
    matter only for raw state dicts (the authors' ``.th``); ``ort_tensorrt`` opts ONNX artifacts
    into onnxruntime's TensorRT provider on GPUs. Each backend is imported only when needed, so a
    CPU install never touches TensorRT.
    """
    path = Path(artifact)
    if not path.exists():
        raise BackendError(f"model artifact not found: {path}")
    suffix = path.suffix.lower()
    if suffix in CHECKPOINT_SUFFIXES:
        from nltool.inference.backends.torch_backend import TorchBackend

        return TorchBackend.from_checkpoint(path, arch=arch, pairwise=pairwise, device=device)
    if suffix in ONNX_SUFFIXES:
        from nltool.inference.backends.onnxruntime_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(path, device=device, tensorrt=ort_tensorrt)
    if suffix in ENGINE_SUFFIXES:
        from nltool.inference.backends.tensorrt_backend import TensorRTBackend

        return TensorRTBackend(path, device="cuda" if device == "auto" else device)
    known = ", ".join(CHECKPOINT_SUFFIXES + ONNX_SUFFIXES + ENGINE_SUFFIXES)
    raise BackendError(f"cannot tell which backend runs {path}: expected a file ending in {known}")


__all__ = ["Backend", "load_backend"]
