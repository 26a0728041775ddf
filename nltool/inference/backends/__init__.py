"""Backends that run artifacts, and the backend for an artifact from ``--backend``/``--precision``."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from nltool.errors import BackendError
from nltool.inference.backends.base import Backend
from nltool.inference.selection import (
    BackendChoice,
    choose_backend,
    cpu_has_native_bf16,
    describe_artifact,
    device_type,
    installed_backends,
)
from nltool.models import Pairwise

if TYPE_CHECKING:
    from nltool.inference.backends.onnxruntime_backend import TensorRTProviderSettings


def select_backend(artifact: str | os.PathLike[str], *, device: str = "auto", backend: str = "auto",
                   precision: str = "auto", compile: bool = False) -> BackendChoice:
    """The backend and precision that run ``artifact`` (see :mod:`nltool.inference.selection`)."""
    described = describe_artifact(artifact)
    return choose_backend(described, backend, precision, device=device_type(device, described.kind),
                          installed=installed_backends(), bf16_cpu=cpu_has_native_bf16(), compile=compile)


def load_backend(
    artifact: str | os.PathLike[str],
    *,
    device: str = "auto",
    backend: str = "auto",
    precision: str = "auto",
    compile: bool = False,
    arch: str | None = None,
    pairwise: Pairwise | None = None,
    ort_tensorrt: TensorRTProviderSettings | None = None,
) -> Backend:
    """The backend that runs ``artifact``, chosen by :func:`select_backend`; its ``choice`` says which and why.

    ``device`` is ``auto``, ``cpu``, ``cuda`` (the current GPU) or ``cuda:N``. ``arch``/``pairwise``
    matter only for raw state dicts (the authors' ``.th``); ``ort_tensorrt`` opts ONNX artifacts
    into onnxruntime's TensorRT provider on GPUs; ``compile`` runs a checkpoint through
    ``torch.compile`` (the torch backend only). Each backend is imported only when needed, so a
    CPU install never touches TensorRT and an ONNX model never imports torch.
    """
    choice = select_backend(artifact, device=device, backend=backend, precision=precision, compile=compile)
    on = device if device != "auto" or choice.device == "cuda" else "cpu"
    loaded: Backend
    if choice.backend == "torch":
        from nltool.inference.backends.torch_backend import TorchBackend

        loaded = TorchBackend.from_checkpoint(artifact, arch=arch, pairwise=pairwise, device=on,
                                              precision=choice.precision, compile=compile)  # type: ignore[arg-type]
    elif choice.backend == "onnxruntime":
        from nltool.inference.backends.onnxruntime_backend import OnnxRuntimeBackend

        loaded = OnnxRuntimeBackend(artifact, device=on, tensorrt=ort_tensorrt)
    elif choice.backend == "openvino":
        from nltool.inference.backends.openvino_backend import OpenVinoBackend

        loaded = OpenVinoBackend(artifact, device=on, precision=choice.precision)  # type: ignore[arg-type]
    elif choice.backend == "tensorrt":
        from nltool.inference.backends.tensorrt_backend import TensorRTBackend

        loaded = TensorRTBackend(artifact, device="cuda" if device == "auto" else device)
    else:
        raise BackendError(f"the {choice.backend} backend is not available in this nltool")
    loaded.choice = choice
    return loaded


__all__ = ["Backend", "BackendChoice", "load_backend", "select_backend"]
