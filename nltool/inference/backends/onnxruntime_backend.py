"""onnxruntime backend: an nltool ONNX artifact (``image`` RGB 0-255 in, ``prob`` out).

CPU installs use the ``onnxruntime`` package; GPU hosts install ``onnxruntime-gpu`` instead
(never both), which adds the CUDA and TensorRT execution providers that are preferred here.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch

from nltool.errors import BackendError
from nltool.inference.backends.base import Backend
from nltool.optional import require

INPUT_NAME = "image"
OUTPUT_NAME = "prob"
PREFERRED_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


def import_onnxruntime() -> ModuleType:
    """Import onnxruntime or say how to install it."""
    return require("onnxruntime", "running .onnx artifacts")


class OnnxRuntimeBackend(Backend):
    """An ``InferenceSession`` on the best available execution providers (or the ones given)."""

    name = "onnxruntime"

    def __init__(self, path: str | os.PathLike[str], *, providers: list[str] | None = None,
                 threads: int | None = None) -> None:
        ort = import_onnxruntime()
        self.path = Path(path)
        if not self.path.is_file():
            raise BackendError(f"ONNX file not found: {self.path}")
        available = ort.get_available_providers()
        chosen = providers or [p for p in PREFERRED_PROVIDERS if p in available]
        missing = [p for p in chosen if p not in available]
        if missing:
            raise BackendError(f"execution providers {missing} are not available here (available: {available})")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=chosen)
        except Exception as exc:  # onnxruntime raises its own exception types for bad files
            raise BackendError(f"onnxruntime cannot load {self.path}: {str(exc).strip().splitlines()[0]}") from exc
        inputs = [i.name for i in self.session.get_inputs()]
        outputs = [o.name for o in self.session.get_outputs()]
        if inputs != [INPUT_NAME] or OUTPUT_NAME not in outputs:
            raise BackendError(
                f"{self.path} is not an nltool artifact: expected input '{INPUT_NAME}' and output "
                f"'{OUTPUT_NAME}', found inputs {inputs} and outputs {outputs}"
            )
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)

    def run(self, batch: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(batch.detach().cpu().numpy(), dtype=np.float32)
        (prob,) = self.session.run([OUTPUT_NAME], {INPUT_NAME: array})
        return torch.from_numpy(prob)

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "artifact": str(self.path), "providers": self.session.get_providers(),
                "metadata": self.metadata}
