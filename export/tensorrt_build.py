"""ONNX -> TensorRT engine (``.plan``) with an optimization profile, a timing cache and a sidecar.

Written against TensorRT 10/11's Python API from NVIDIA's documentation: networks are created
strongly typed (required for explicit-quantization INT8, always on in 11), precision comes from
the ONNX (QDQ for INT8) except FP16 on TensorRT 10, which still has ``BuilderFlag.FP16`` for weakly
typed networks; on 11 an FP16 build needs an FP16 ONNX (``onnxconverter-common``, keeping float32
I/O). No removed calls (no implicit batch, no INT8 calibrators, no ``build_engine``). Importing
this module never imports TensorRT. Nothing here can run on the project's CPU-only machines.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from nltool.export.onnx_export import ExportError
from nltool.fileio import atomic_path, write_json
from nltool.inference.backends.onnxruntime_backend import INPUT_NAME
from nltool.inference.backends.tensorrt_backend import import_tensorrt, require_cuda
from nltool.inference.config import Precision
from nltool.optional import require


@dataclass(frozen=True)
class EngineProfile:
    """The optimization profile: batch and tile side ranges (tiles are square, multiples of 32).

    Kernels are tuned for ``opt``; any shape inside [min, max] runs. Memory grows with ``max``
    (the NL3 attention map is (H·W/64)·(H·W/256) values per image), so keep max near the tile you serve.
    """

    min_batch: int = 1
    opt_batch: int = 1
    max_batch: int = 4
    min_side: int = 256
    opt_side: int = 1024
    max_side: int = 1024

    def __post_init__(self) -> None:
        if not 1 <= self.min_batch <= self.opt_batch <= self.max_batch:
            raise ExportError(f"batch sizes must satisfy 1 <= min <= opt <= max, got {self}")
        sides = (self.min_side, self.opt_side, self.max_side)
        if any(s % 32 or s < 32 for s in sides) or not self.min_side <= self.opt_side <= self.max_side:
            raise ExportError(f"tile sides must be multiples of 32 with min <= opt <= max, got {sides}")

    def shapes(self) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """(min, opt, max) input shapes N×3×H×W."""
        return ((self.min_batch, 3, self.min_side, self.min_side), (self.opt_batch, 3, self.opt_side, self.opt_side),
                (self.max_batch, 3, self.max_side, self.max_side))


def timing_cache_path(cache: Path, tensorrt_version: str, capability: tuple[int, int]) -> Path:
    """Where builds with TensorRT ``tensorrt_version`` on GPUs of compute ``capability`` keep their
    timing cache, inside nltool's ``cache`` folder: TensorRT rejects a cache from another GPU kind
    and skips one from another version, so each pair has its own file, reused by every later build."""
    major, minor = capability
    return cache / "tensorrt" / f"timing-trt{tensorrt_version}-sm{major}{minor}.cache"


def fp16_onnx(onnx_path: Path, out: Path) -> Path:
    """An FP16 copy of the graph with float32 inputs/outputs, for TensorRT 11's strongly typed FP16."""
    import onnx

    float16 = require("onnxconverter_common.float16", "an FP16 TensorRT engine")

    model = float16.convert_float_to_float16(onnx.load(onnx_path), keep_io_types=True)
    with atomic_path(out) as tmp:
        onnx.save_model(model, tmp)
    return out


def build_engine(onnx_path: Path, plan_path: Path, *, precision: Precision, profile: EngineProfile,
                 workspace_gib: float = 4.0, timing_cache: Path | None = None) -> dict[str, Any]:
    """Build and write the engine (atomically); returns the sidecar data (versions, GPU, profile)."""
    require_cuda()
    trt = import_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    weak_fp16 = precision == "fp16" and hasattr(trt.BuilderFlag, "FP16")  # TensorRT 10 only
    flags = 0 if weak_fp16 else 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i).desc()) for i in range(parser.num_errors))
        raise ExportError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * 2**30))
    if precision == "fp32":
        config.clear_flag(trt.BuilderFlag.TF32)  # true FP32, so parity against PyTorch holds
    if weak_fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    shape_profile = builder.create_optimization_profile()
    shape_profile.set_shape(INPUT_NAME, *profile.shapes())
    config.add_optimization_profile(shape_profile)
    cache_bytes = timing_cache.read_bytes() if timing_cache and timing_cache.exists() else b""
    cache = config.create_timing_cache(cache_bytes)
    if not config.set_timing_cache(cache, ignore_mismatch=False):  # made on another kind of GPU: start afresh
        cache = config.create_timing_cache(b"")
        config.set_timing_cache(cache, ignore_mismatch=False)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise ExportError(f"TensorRT failed to build an engine from {onnx_path}; see its log above")
    with atomic_path(plan_path) as tmp:
        tmp.write_bytes(bytes(plan))
    if timing_cache is not None:
        with atomic_path(timing_cache) as tmp:
            tmp.write_bytes(bytes(config.get_timing_cache().serialize()))
    return {
        "tensorrt": trt.__version__,
        "gpu": torch.cuda.get_device_name(),
        "compute_capability": ".".join(map(str, torch.cuda.get_device_capability())),
        "precision": precision,
        "profile": asdict(profile),
        "onnx": str(onnx_path),
    }


def write_sidecar(plan_path: Path, data: dict[str, Any]) -> Path:
    """``<engine>.json`` beside the engine: what it was built with and the parity measured."""
    return write_json(plan_path.with_suffix(".json"), data)
