"""TensorRT backend: a serialized engine (``.plan``) on a CUDA GPU, via TensorRT 10/11's tensor-name API.

Written from NVIDIA's documentation (Runtime -> deserialize_cuda_engine -> IExecutionContext;
per call ``set_input_shape``, ``set_tensor_address``, ``execute_async_v3`` on a non-default
stream). No removed calls: no binding indices, no ``execute_v2``. Importing this module never
imports TensorRT; constructing the backend does, and fails with a message saying what is missing.
This path cannot run on the project's CPU-only CI and is untested there.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import numpy as np
import torch

from nltool.devices import Device, resolve_device
from nltool.errors import BackendError
from nltool.inference.backends.base import Backend
from nltool.inference.backends.onnxruntime_backend import INPUT_NAME, OUTPUT_NAME
from nltool.optional import require

Context = TypeVar("Context")


def import_tensorrt() -> ModuleType:
    """Import the ``tensorrt`` Python package, or explain why it cannot be used here."""
    return require("tensorrt", "TensorRT engines")


def require_cuda() -> None:
    """TensorRT needs a visible CUDA GPU; fail at once, before any TensorRT call, when there is none."""
    if not torch.cuda.is_available():
        raise BackendError("TensorRT needs a CUDA GPU and none is visible on this machine")


def require_context(context: Context | None, path: Path, device: Device,
                    profile: list[tuple[int, ...]]) -> Context:
    """The execution context, or a clear error when TensorRT returned none (it allocates the memory
    of the profile's largest shape up front, and returns None when the GPU has not that much free)."""
    if context is None:
        raise BackendError(
            f"TensorRT could not create an execution context for {path} on {device}: not enough free GPU "
            f"memory for the engine's largest input {profile[-1]} (profile min, opt, max = {profile}); free the "
            "GPU (fewer workers per GPU), or rebuild with a smaller --max-side/--max-batch"
        )
    return context


class TensorRTBackend(Backend):
    """One engine, one execution context and one CUDA stream; calls are serialised by a lock."""

    name = "tensorrt"

    def __init__(self, path: str | os.PathLike[str], device: str = "cuda") -> None:
        require_cuda()
        trt = import_tensorrt()
        self.path = Path(path)
        if not self.path.is_file():
            raise BackendError(f"TensorRT engine not found: {self.path}")
        self.device = resolve_device(device)
        if self.device.type != "cuda":
            raise BackendError(f"TensorRT engines run on CUDA devices, not {self.device}")
        self._torch_device = self.device.to_torch()
        torch.cuda.set_device(self._torch_device)  # the CUDA context exists before TensorRT's runtime
        self._trt = trt
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise BackendError(
                f"TensorRT {trt.__version__} cannot load {self.path}: engines are tied to the TensorRT "
                "version and GPU they were built with; rebuild it here with `nltool export --trt`"
            )
        names = {self.engine.get_tensor_name(i): self.engine.get_tensor_mode(self.engine.get_tensor_name(i))
                 for i in range(self.engine.num_io_tensors)}
        if names.get(INPUT_NAME) != trt.TensorIOMode.INPUT or names.get(OUTPUT_NAME) != trt.TensorIOMode.OUTPUT:
            raise BackendError(f"{self.path} is not an nltool engine: I/O tensors are {sorted(names)}")
        self.context = require_context(self.engine.create_execution_context(), self.path, self.device,
                                       self.profile())
        self.stream = torch.cuda.Stream(device=self._torch_device)
        self._lock = threading.Lock()

    def _torch_dtype(self, name: str) -> torch.dtype:
        dtypes = {self._trt.DataType.FLOAT: torch.float32, self._trt.DataType.HALF: torch.float16}
        trt_dtype = self.engine.get_tensor_dtype(name)
        if trt_dtype not in dtypes:
            raise BackendError(f"engine tensor {name!r} has unsupported dtype {trt_dtype}")
        return dtypes[trt_dtype]

    def profile(self) -> list[tuple[int, ...]]:
        """The input's optimization profile: [min, opt, max] shapes."""
        return [tuple(shape) for shape in self.engine.get_tensor_profile_shape(INPUT_NAME, 0)]

    def run(self, batch: np.ndarray) -> np.ndarray:
        with self._lock, torch.cuda.device(self._torch_device), torch.cuda.stream(self.stream):
            host = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
            image = host.to(self._torch_device, self._torch_dtype(INPUT_NAME)).contiguous()
            if not self.context.set_input_shape(INPUT_NAME, tuple(image.shape)):
                raise BackendError(
                    f"input shape {tuple(image.shape)} is outside the engine's optimization profile "
                    f"(min, opt, max) = {self.profile()}; use a tile size and batch size inside it"
                )
            prob = torch.empty(tuple(self.context.get_tensor_shape(OUTPUT_NAME)),
                               dtype=self._torch_dtype(OUTPUT_NAME), device=self._torch_device)
            self.context.set_tensor_address(INPUT_NAME, image.data_ptr())
            self.context.set_tensor_address(OUTPUT_NAME, prob.data_ptr())
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise BackendError("TensorRT execution failed; see the TensorRT log above")
            self.stream.synchronize()
        return prob.float().cpu().numpy()

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "artifact": str(self.path), "device": str(self.device),
                "tensorrt": self._trt.__version__, "gpu": torch.cuda.get_device_name(self._torch_device),
                "profile": self.profile()}
