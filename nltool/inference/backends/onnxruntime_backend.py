"""onnxruntime backend: an nltool ONNX artifact (``image`` RGB 0-255 in, ``prob`` out).

CPU installs use the ``onnxruntime`` package; GPU hosts install ``onnxruntime-gpu`` instead
(never both). Execution providers follow the device (:func:`execution_providers`): ``cpu`` runs
on the CPU provider, ``cuda:N`` on the CUDA provider with ``device_id`` N and then the CPU
provider. onnxruntime's TensorRT provider is opt-in (:class:`TensorRTProviderSettings`): unlike
an exported ``.plan`` it builds its engine when the session starts, for the shape range it is
given, and caches it on disk; without a range and a cache it would rebuild inside a request,
in every worker, whenever a tile shape falls outside the last engine's.

Every session nltool opens flushes denormal floats to zero (:func:`session_options`): on real
imagery the attention softmax of a non-local block is up to a fifth denormal, and on Intel CPUs the
MatMul that reads it then ran 22× slower (the whole model 2.5×) with the same masks.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from nltool.devices import CPU, Device, resolve_device
from nltool.errors import BackendError
from nltool.inference.backends.base import Backend
from nltool.inference.config import PipelineConfig
from nltool.inference.onnx_metadata import read_onnx_metadata
from nltool.inference.tta import scaled_size
from nltool.models.archs import SIZE_MULTIPLE
from nltool.optional import available, require

INPUT_NAME = "image"
OUTPUT_NAME = "prob"
CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"
TENSORRT_PROVIDER = "TensorrtExecutionProvider"
Provider = tuple[str, dict[str, Any]]
"""An execution provider and its options, as ``InferenceSession(providers=[...])`` takes them."""
DENORMALS_AS_ZERO = "session.set_denormal_as_zero"
"""onnxruntime's session config key for flush-to-zero and denormals-are-zero on the session's threads."""


def session_options(ort: ModuleType, threads: int | None = None) -> Any:
    """The ``ort.SessionOptions`` of every onnxruntime session nltool opens: denormals flushed to
    zero, and ``threads`` intra-op threads when given.

    On a trained NL34 and real imagery, the first non-local block's softmax is up to 20% denormal
    (probabilities under 1.2e-38); Intel CPUs take a microcode assist per denormal operand, so the
    MatMul after it ran 22× slower and the whole model 2.5× (masks bit-identical with and without).
    onnxruntime sets the calling thread's flags from the first session of a process only, so
    nltool's every session sets this entry, not just the backend's; that thread's own float
    arithmetic then flushes denormals too (docs/inference.md)."""
    options = ort.SessionOptions()
    options.add_session_config_entry(DENORMALS_AS_ZERO, "1")
    if threads:
        options.intra_op_num_threads = threads
    return options


def import_onnxruntime() -> ModuleType:
    """Import onnxruntime or say how to install it."""
    return require("onnxruntime", "running .onnx artifacts")


def load_tensorrt_libraries() -> None:
    """Import the ``tensorrt`` package when it is installed: it loads TensorRT's libraries from its
    wheels, and onnxruntime's TensorRT provider then finds ``libnvinfer`` already loaded, without
    ``LD_LIBRARY_PATH``. Without the package the provider looks on the library path itself."""
    if available("tensorrt"):
        require("tensorrt", "onnxruntime's TensorRT provider")


def _shape_text(shape: tuple[int, ...]) -> str:
    return f"{INPUT_NAME}:{'x'.join(map(str, shape))}"


@dataclass(frozen=True)
class TensorRTProviderSettings:
    """onnxruntime's TensorRT provider, opted into: where its engines are cached and the input
    shape range (min, opt, max N×3×H×W) its engine is built for."""

    cache_dir: Path
    min_shape: tuple[int, ...]
    opt_shape: tuple[int, ...]
    max_shape: tuple[int, ...]

    @classmethod
    def for_pipeline(cls, config: PipelineConfig, cache_dir: Path) -> TensorRTProviderSettings:
        """The shapes ``config`` sends: from one 32² tile (small images) to ``batch_size`` tiles at
        the largest scale; tuned for full tiles at scale 1 (or the largest, if all scales shrink)."""
        largest = max(scaled_size(config.tile, config.tile, scale)[0] for scale in config.scales)
        opt = min(config.tile, largest)
        return cls(cache_dir=cache_dir, min_shape=(1, 3, SIZE_MULTIPLE, SIZE_MULTIPLE),
                   opt_shape=(config.batch_size, 3, opt, opt), max_shape=(config.batch_size, 3, largest, largest))

    def options(self) -> dict[str, Any]:
        """The provider options (names from onnxruntime's TensorRT execution provider documentation)."""
        return {
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": str(self.cache_dir),
            "trt_timing_cache_enable": True,
            "trt_timing_cache_path": str(self.cache_dir),
            "trt_profile_min_shapes": _shape_text(self.min_shape),
            "trt_profile_opt_shapes": _shape_text(self.opt_shape),
            "trt_profile_max_shapes": _shape_text(self.max_shape),
        }


def onnxruntime_device(device: str, available: Sequence[str]) -> Device:
    """The device ``--device`` names for onnxruntime: ``cpu``, and ``auto`` on an onnxruntime without
    the CUDA provider, are the CPU without asking torch (a CPU run never imports it); anything else
    is resolved as torch sees the GPUs."""
    if device.strip() == "cpu" or (device == "auto" and CUDA_PROVIDER not in available):
        return CPU
    return resolve_device(device)


def execution_providers(device: Device, available: Sequence[str], *, explicit: bool = True,
                        tensorrt: TensorRTProviderSettings | None = None,
                        quantization: str | None = None) -> list[Provider]:
    """The providers, with options, that run an artifact on ``device``.

    ``cpu``: the CPU provider. ``cuda:N``: the CUDA provider on GPU N, then the CPU provider; with
    ``tensorrt``, onnxruntime's TensorRT provider on GPU N first. ``explicit=False`` (``--device
    auto``) falls back to the CPU when this onnxruntime has no CUDA provider instead of failing.
    ``quantization`` is the artifact's ``quantization`` metadata: a CPU-flavour INT8 model is
    refused for TensorRT, which does not accept it whole (uint8 zero points, int32 biases).
    """
    cpu: Provider = (CPU_PROVIDER, {})
    if device.type == "cpu":
        return [cpu]
    if device.type != "cuda" or device.index is None:
        raise BackendError(f"onnxruntime runs on cpu or cuda:N, not {device}")
    if CUDA_PROVIDER not in available:
        if not explicit:
            return [cpu]
        raise BackendError(f"this onnxruntime cannot use {device} (providers: {', '.join(available)}): install "
                           "onnxruntime-gpu instead of onnxruntime (pip install 'nltool[gpu]'), or use --device cpu")
    gpu = {"device_id": device.index}
    providers: list[Provider] = [(CUDA_PROVIDER, gpu), cpu]
    if tensorrt is None:
        return providers
    if TENSORRT_PROVIDER not in available:
        raise BackendError(f"onnxruntime's TensorRT provider is not in this onnxruntime ({', '.join(available)}); "
                           "install onnxruntime-gpu with TensorRT (pip install 'nltool[gpu,trt]') or turn it off")
    if quantization and "(cpu)" in quantization:
        raise BackendError(f"this artifact is {quantization}, made for onnxruntime's CPU provider; TensorRT does "
                           "not accept it whole: serve model.onnx with the TensorRT provider, or the INT8 .plan "
                           "engine from `nltool export --trt --int8`")
    return [(TENSORRT_PROVIDER, {**gpu, **tensorrt.options()}), *providers]


class OnnxRuntimeBackend(Backend):
    """An ``InferenceSession`` on the providers :func:`execution_providers` picks for ``device``;
    an explicitly requested device that onnxruntime could not start is an error, not a silent CPU run."""

    name = "onnxruntime"

    def __init__(self, path: str | os.PathLike[str], *, device: str = "auto",
                 tensorrt: TensorRTProviderSettings | None = None, threads: int | None = None) -> None:
        ort = import_onnxruntime()
        self.path = Path(path)
        if not self.path.is_file():
            raise BackendError(f"ONNX file not found: {self.path}")
        self.device = onnxruntime_device(device, ort.get_available_providers())
        explicit = device != "auto"
        quantization = None
        if tensorrt is not None and self.device.type == "cuda":
            quantization = read_onnx_metadata(self.path).get("quantization")
            load_tensorrt_libraries()
        providers = execution_providers(self.device, ort.get_available_providers(), explicit=explicit,
                                        tensorrt=tensorrt, quantization=quantization)
        try:
            self.session = ort.InferenceSession(str(self.path), session_options(ort, threads), providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types for bad files
            raise BackendError(f"onnxruntime cannot load {self.path}: {str(exc).strip().splitlines()[0]}") from exc
        inputs = [i.name for i in self.session.get_inputs()]
        outputs = [o.name for o in self.session.get_outputs()]
        if inputs != [INPUT_NAME] or OUTPUT_NAME not in outputs:
            raise BackendError(
                f"{self.path} is not an nltool artifact: expected input '{INPUT_NAME}' and output "
                f"'{OUTPUT_NAME}', found inputs {inputs} and outputs {outputs}"
            )
        first = providers[0][0]
        if explicit and first not in self.session.get_providers():  # onnxruntime falls back silently
            raise BackendError(f"onnxruntime could not start {first} on {self.device} for {self.path} (running on "
                               f"{self.session.get_providers()}); see onnxruntime's log above")
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)

    def run(self, batch: np.ndarray) -> np.ndarray:
        (prob,) = self.session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(batch, dtype=np.float32)})
        return np.asarray(prob)

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "artifact": str(self.path), "device": str(self.device),
                "providers": self.session.get_providers(), "provider_options": self.session.get_provider_options(),
                "metadata": self.metadata}

