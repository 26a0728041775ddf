"""OpenVINO backend: an nltool ONNX artifact or OpenVINO IR (``.xml`` + ``.bin``) on the CPU.

Precision is pinned, never left to OpenVINO's default: ``fp32`` sets ``INFERENCE_PRECISION_HINT``
to f32 (on CPUs with AMX OpenVINO would otherwise run bf16), ``bf16`` sets it to bf16 and is refused
on CPUs whose ``OPTIMIZATION_CAPABILITIES`` do not list BF16 (AVX512-BF16 or AMX; elsewhere
OpenVINO would emulate it, slower than f32). ``int8`` runs a quantized model (FakeQuantize nodes:
nltool's accuracy-controlled NNCF IR ``model.int8.xml``, or a QDQ ONNX as OpenVINO reads it); its
float layers run in bf16 on CPUs with native bf16, else f32. Why OpenVINO's plain INT8 was wrong on
a trained NL34: docs/performance.md. The model is compiled once with its
dynamic input shape: every batch size and tile side runs on the same compiled model (measured in
docs/performance.md: recompiling per shape does not run faster). GPUs and NPUs are out of scope.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from nltool.errors import BackendError
from nltool.inference.backends.base import Backend
from nltool.inference.backends.onnxruntime_backend import INPUT_NAME, OUTPUT_NAME
from nltool.inference.config import Precision
from nltool.inference.selection import NATIVE_BF16_FLAGS, ONNX_SUFFIXES, OPENVINO_SUFFIXES, backend_precisions
from nltool.optional import require

PRECISIONS: tuple[Precision, ...] = backend_precisions("openvino")
"""fp32, bf16 (CPUs with AVX512-BF16 or AMX), int8 (an INT8 artifact)."""
READABLE_SUFFIXES = ONNX_SUFFIXES + OPENVINO_SUFFIXES
"""What :class:`OpenVinoBackend` reads: ONNX, and OpenVINO IR (the ``.xml``; its ``.bin`` lies beside it)."""
INFERENCE_PRECISION: dict[str, str] = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}
"""``INFERENCE_PRECISION_HINT`` per precision: int8 artifacts keep their float layers in f32, or in
bf16 on CPUs with native bf16 (:func:`compile_config`)."""
QUANTIZED_OPS = frozenset({"FakeQuantize"})
"""Op types that mark a quantized OpenVINO model (NNCF's IR, or a QDQ ONNX as OpenVINO reads it)."""


def import_openvino() -> ModuleType:
    """Import OpenVINO or say how to install it."""
    return require("openvino", "running models with OpenVINO")


def bf16_supported(capabilities: Iterable[str]) -> bool:
    """Whether a CPU runs bf16 natively, from OpenVINO's ``OPTIMIZATION_CAPABILITIES`` of the CPU
    device (``["FP32", "BF16", "INT8", ...]``) or the CPU flags of ``/proc/cpuinfo``
    (``avx512_bf16``, ``amx_bf16``)."""
    return any(cap.strip().lower() in NATIVE_BF16_FLAGS | {"bf16"} for cap in capabilities)


def cpu_capabilities(core: Any) -> list[str]:
    """OpenVINO's ``OPTIMIZATION_CAPABILITIES`` of the CPU device of ``core`` (an ``ov.Core``)."""
    return [str(cap) for cap in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")]


def openvino_device(device: str) -> str:
    """OpenVINO's device name for ``--device``: ``cpu`` and ``auto`` are the CPU; anything else is refused."""
    if device.strip().lower() in {"cpu", "auto"}:
        return "CPU"
    raise BackendError(f"the OpenVINO backend runs on the CPU only, not {device!r}: use --device cpu (or auto), "
                       "or another backend (onnxruntime, tensorrt) for GPUs")


def compile_config(precision: str, threads: int | None, native_bf16: bool = False) -> dict[str, Any]:
    """The CPU plugin properties for ``precision`` and ``threads`` (names from OpenVINO's CPU
    device documentation): the inference precision pinned, latency mode, and the thread count. An
    int8 model's float operations run in bf16 where the CPU has it natively (``native_bf16``): the
    accuracy-controlled export measures its masks with the same setting."""
    if precision not in PRECISIONS:
        raise BackendError(f"OpenVINO precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    hint = "bf16" if precision == "int8" and native_bf16 else INFERENCE_PRECISION[precision]
    config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": hint,
                              "PERFORMANCE_HINT": "LATENCY"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    return config


def is_quantized(op_types: Iterable[str]) -> bool:
    """Whether a model with these op types is quantized (holds FakeQuantize nodes)."""
    return not QUANTIZED_OPS.isdisjoint(op_types)


def check_precision(precision: str, capabilities: list[str], quantized: bool, path: Path) -> None:
    """Refuse a precision this CPU or this artifact cannot give, saying what to do instead."""
    if precision == "bf16" and not bf16_supported(capabilities):
        raise BackendError(f"bf16 needs a CPU with native bf16 (AVX512-BF16 or AMX: OpenVINO's CPU "
                           f"OPTIMIZATION_CAPABILITIES list BF16); this CPU has {', '.join(capabilities)}: "
                           "use --precision fp32")
    if precision == "int8" and not quantized:
        raise BackendError(f"{path} is not quantized (no FakeQuantize nodes): OpenVINO's int8 runs a quantized "
                           "OpenVINO IR; use --precision fp32 or bf16, or onnxruntime for nltool's model.int8.onnx")
    if precision != "int8" and quantized:
        raise BackendError(f"{path} is an INT8 model: run it with --precision int8, or use model.onnx for "
                           f"{precision}")


def last_line(exc: BaseException) -> str:
    """The last non-empty line of an OpenVINO error (its first lines are source locations)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


class OpenVinoBackend(Backend):
    """One compiled model with a dynamic input shape and one infer request; calls are serialised by a lock."""

    name = "openvino"

    def __init__(self, path: str | os.PathLike[str], *, device: str = "cpu", precision: Precision = "fp32",
                 threads: int | None = None) -> None:
        ov = import_openvino()
        self.path = Path(path)
        self.device = openvino_device(device)
        if self.path.suffix.lower() not in READABLE_SUFFIXES:
            raise BackendError(f"OpenVINO reads .onnx or OpenVINO IR (.xml + .bin), not {self.path.name}")
        if not self.path.is_file():
            raise BackendError(f"model file not found: {self.path}")
        if self.path.suffix.lower() == ".xml" and not self.path.with_suffix(".bin").is_file():
            raise BackendError(f"OpenVINO IR {self.path} has no weights file {self.path.with_suffix('.bin').name} "
                               "beside it: copy both files")
        self.precision = precision
        self.threads = threads
        core = ov.Core()
        self.version = version = ov.__version__.split("-")[0]
        self.capabilities = cpu_capabilities(core)
        config = compile_config(precision, threads, native_bf16=bf16_supported(self.capabilities))
        try:
            model = core.read_model(str(self.path))
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses with multi-line messages
            raise BackendError(f"OpenVINO {version} cannot read {self.path}: "
                               f"{last_line(exc)}") from exc
        inputs = [name for port in model.inputs for name in port.get_names()]
        outputs = [name for port in model.outputs for name in port.get_names()]
        if len(model.inputs) != 1 or INPUT_NAME not in inputs or OUTPUT_NAME not in outputs:
            raise BackendError(f"{self.path} is not an nltool artifact: expected input '{INPUT_NAME}' and output "
                               f"'{OUTPUT_NAME}', found inputs {inputs} and outputs {outputs}")
        self.quantized = is_quantized(op.get_type_name() for op in model.get_ops())
        check_precision(precision, self.capabilities, self.quantized, self.path)
        try:
            self.compiled = core.compile_model(model, self.device, config)
        except Exception as exc:
            raise BackendError(f"OpenVINO {version} cannot compile {self.path} for the CPU: "
                               f"{last_line(exc)}") from exc
        self._request = self.compiled.create_infer_request()
        self._output = self.compiled.output(OUTPUT_NAME)
        self._lock = threading.Lock()

    def run(self, batch: np.ndarray) -> np.ndarray:
        with self._lock:
            try:
                results = self._request.infer({INPUT_NAME: np.ascontiguousarray(batch, dtype=np.float32)})
            except RuntimeError as exc:  # e.g. the non-local attention of a large batch not fitting in memory
                # not an NltoolError: a model failing to run is the server's fault (TorchServe answers 500)
                raise RuntimeError(f"OpenVINO failed on a batch of shape {tuple(batch.shape)}: {last_line(exc)}; "
                                   "if memory ran out, use a smaller --tile or --batch-size") from exc
            prob = np.array(results[self._output], dtype=np.float32)  # a copy: the request reuses its buffer
        expected = (batch.shape[0], 1, *batch.shape[2:])
        if prob.shape != expected:  # measured: with 1 thread, a 4-channel batch gave an empty output, no error
            raise ValueError(f"OpenVINO returned shape {prob.shape} for a batch of shape {tuple(batch.shape)} "
                             f"(expected {expected}): the batch must be N×3×H×W RGB")
        return prob

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "artifact": str(self.path), "device": "cpu", "openvino": self.version,
                "precision": self.precision, "quantized": self.quantized,
                "inference_precision": self.compiled.get_property("INFERENCE_PRECISION_HINT").to_string(),
                "threads": int(self.compiled.get_property("INFERENCE_NUM_THREADS")),
                "cpu_capabilities": self.capabilities}
