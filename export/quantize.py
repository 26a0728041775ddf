"""INT8: a QDQ ONNX from onnxruntime's static quantization, calibrated on the user's images.

Calibration images go through the same preprocessing as inference (``nltool.imagery``: any
supported format, RGB 0-255, centre tile of ``calib_size``, padded like the pipeline pads).
Weights are quantized per channel; every Conv is quantized by default, everything else stays
float. Measured on a trained NL34 (docs/performance.md): quantizing ConvTranspose made the model
slower and less accurate, so it is never done; keeping groups of Convs float (``keep_float``:
the stem, the non-local blocks, the decoder) trades speed for mask agreement, which matters most
for a model that is not yet sure of itself.

Two flavours: ``cpu`` (uint8 activations, int8 weights: onnxruntime's fast path on x86) and
``tensorrt`` (symmetric int8 activations and weights, no quantized biases, and no Q/DQ on Conv
outputs: TensorRT fuses a Conv with the Q/DQ of its inputs and weights; a requantized output,
the 1-channel logits before the sigmoid included, only costs accuracy and time). The options
per flavour are :func:`quantizer_options`.
"""

from __future__ import annotations

import inspect
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnx

from nltool.errors import ImageError
from nltool.export.onnx_export import ExportError
from nltool.fileio import atomic_path
from nltool.imagery import open_image
from nltool.inference.backends.onnxruntime_backend import INPUT_NAME, import_onnxruntime, session_options
from nltool.inference.tiling import round_up

Target = Literal["cpu", "tensorrt"]
QUANTIZED_OPS = ["Conv"]
"""Only convolutions: onnxruntime has no int8 ConvTranspose kernel (QDQ around it only adds
conversions), and MatMul/Softmax of the non-local attention, Add and Sigmoid stay float."""
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff")
KEEP_FLOAT_GROUPS: dict[str, tuple[str, ...]] = {
    "stem": ("model.encoder.conv1", "model.encoder.bn1"),
    "nonlocal": ("model.encoder.nonlocal",),
    "decoder": ("model.decoder.",),
}
"""Convs that ``keep_float`` may leave in float, by the PyTorch modules they came from (the exporter
records them in each node's ``pkg.torch.onnx.name_scopes``; a Conv fused with its BatchNorm carries
the BatchNorm's name). Measured trade-offs: docs/performance.md."""
NAME_SCOPES = "pkg.torch.onnx.name_scopes"


@dataclass(frozen=True)
class QuantizerOptions:
    """What ``quantize_static`` is told for one flavour: onnxruntime ``QuantType`` names, ``reduce_range``
    (7-bit weights) and ``extra_options``."""

    activation_type: str
    weight_type: str
    reduce_range: bool
    extra_options: dict[str, Any]


def quantizer_options(target: Target) -> QuantizerOptions:
    """The flavour's options. ``tensorrt`` follows TensorRT's explicit-quantization rules (symmetric
    int8, float biases, weights as Q/DQ pairs) and, like NVIDIA Model-Optimizer's onnxruntime
    settings, leaves the outputs of the quantized ops unquantized. ``cpu`` is onnxruntime's recommended
    CPU setting (u8 asymmetric activations, s8 symmetric per-channel weights) with full 8-bit weights:
    ``reduce_range`` (7 bits) avoids the int16 pair-sum saturation of CPUs without VNNI, but measured
    on such a CPU (AVX2 Zen 2) it lost more to weight precision than it saved on both trained
    checkpoints once the stem is float, and ``auto`` then found no choice that holds; it helped only
    with every Conv quantized, which misses the gate with either (docs/artifacts.md)."""
    if target == "tensorrt":
        return QuantizerOptions("QInt8", "QInt8", False, {
            "ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False, "AddQDQPairToWeight": True,
            "OpTypesToExcludeOutputQuantization": list(QUANTIZED_OPS)})
    return QuantizerOptions("QUInt8", "QInt8", False, {
        "ActivationSymmetric": False, "WeightSymmetric": True, "QuantizeBias": True, "AddQDQPairToWeight": False})


def calibration_batches(calib_dir: Path, size: int = 512, limit: int = 16) -> list[np.ndarray]:
    """Up to ``limit`` 1×3×size×size float32 RGB batches: the centre of each image in ``calib_dir``."""
    if not calib_dir.is_dir():
        raise ExportError(f"calibration folder {calib_dir} does not exist or is not a folder")
    paths = sorted(p for p in calib_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and "_mask" not in p.stem)
    if not paths:
        raise ExportError(f"{calib_dir} holds no images to calibrate on (PNG, JPEG or TIFF; *_mask files are skipped)")
    side = round_up(size)
    batches = []
    for path in paths[:limit]:
        try:
            with open_image(path) as reader:
                h, w = min(side, reader.height), min(side, reader.width)
                y0, x0 = (reader.height - h) // 2, (reader.width - w) // 2
                rgb, _ = reader.read_rows(y0, y0 + h)
        except ImageError as exc:
            raise ExportError(f"calibration image unusable: {exc}") from exc
        tile = np.pad(rgb[:, x0:x0 + w], ((0, side - h), (0, side - w), (0, 0)), mode="reflect")
        batches.append(np.ascontiguousarray(tile.transpose(2, 0, 1)[None], dtype=np.float32))
    return batches


def check_keep_float(groups: Sequence[str]) -> None:
    """Refuse group names that are not keys of :data:`KEEP_FLOAT_GROUPS`."""
    unknown = sorted(set(groups) - KEEP_FLOAT_GROUPS.keys())
    if unknown:
        raise ExportError(f"unknown --int8-keep-float group(s) {', '.join(unknown)}; choose from "
                          f"{', '.join(KEEP_FLOAT_GROUPS)}")


def _group_convs(model: onnx.ModelProto, groups: Sequence[str]) -> list[str]:
    """Names of the Conv nodes that came from the modules of ``groups``."""
    prefixes = tuple(prefix for group in groups for prefix in KEEP_FLOAT_GROUPS[group])
    names = []
    for node in model.graph.node:
        scopes = next((p.value for p in node.metadata_props if p.key == NAME_SCOPES), "")
        if node.op_type == "Conv" and prefixes and any(f"'{prefix}" in scopes for prefix in prefixes):
            names.append(node.name)
    return names


def float_conv_nodes(model: onnx.ModelProto, groups: Sequence[str]) -> list[str]:
    """Names of the Conv nodes of ``groups`` (keys of :data:`KEEP_FLOAT_GROUPS`) in an nltool ONNX."""
    check_keep_float(groups)
    names = _group_convs(model, groups)
    if groups and not names:
        raise ExportError(f"{', '.join(groups)}: no Conv in this ONNX records those modules (it was not "
                          "exported by this nltool); quantize without --int8-keep-float")
    return names


def groups_present(model: onnx.ModelProto) -> list[str]:
    """The groups of :data:`KEEP_FLOAT_GROUPS` that have Convs in ``model`` (a LinkNet has no non-local)."""
    return [group for group in KEEP_FLOAT_GROUPS if _group_convs(model, [group])]


@dataclass(frozen=True)
class Calibration:
    """What every INT8 model made from one FP32 ONNX shares: the pre-processed model, the calibration
    batches, and onnxruntime's cache of the activation ranges they produce. The ranges are computed
    once (the slow part: the FP32 model runs on every batch with all Conv inputs as outputs) and
    reused by every later quantization, whichever Convs it leaves float and for either flavour: the
    calibrator records every Conv input's range, and nodes to exclude or symmetric types only
    change how the quantizer uses them (``quantize_static(calibration_cache_path=...)``, added by
    microsoft/onnxruntime#28221, in 1.30 and 1.32; older versions calibrate again each time)."""

    fp32_onnx: Path
    prepared: Path
    batches: list[np.ndarray]
    ranges: Path


def prepare_calibration(fp32_onnx: Path, batches: list[np.ndarray], work: Path) -> Calibration:
    """Pre-process ``fp32_onnx`` for quantization into the folder ``work`` (which the caller owns)."""
    import_onnxruntime()
    from onnxruntime.quantization.shape_inference import quant_pre_process

    work.mkdir(parents=True, exist_ok=True)
    prepared = work / "prepared.onnx"
    # Folds Conv+BatchNorm and infers shapes; symbolic shape inference cannot follow the
    # dynamic non-local reshapes, so it is skipped (as onnxruntime's docs allow).
    quant_pre_process(str(fp32_onnx), str(prepared), skip_symbolic_shape=True)
    return Calibration(fp32_onnx=fp32_onnx, prepared=prepared, batches=batches, ranges=work / "ranges.json")


def write_int8(calibration: Calibration, out: Path, *, target: Target = "cpu", keep_float: Sequence[str] = (),
               note: str = "") -> Path:
    """Write a QDQ INT8 model with the same ``image``/``prob`` I/O as the FP32 ONNX, atomically; the
    Convs of the ``keep_float`` groups stay float. ``note`` ends the ``quantization`` metadata value."""
    ort = import_onnxruntime()
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    fp32 = onnx.load(calibration.fp32_onnx)
    excluded = float_conv_nodes(fp32, keep_float)

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it: Iterator[np.ndarray] = iter(calibration.batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self._it, None)
            return None if batch is None else {INPUT_NAME: batch}

    cache = ({"calibration_cache_path": str(calibration.ranges)}
             if "calibration_cache_path" in inspect.signature(quantize_static).parameters else {})
    settings = quantizer_options(target)
    with atomic_path(out) as dest:
        quantize_static(
            str(calibration.prepared), str(dest), _Reader(), quant_format=QuantFormat.QDQ,
            op_types_to_quantize=QUANTIZED_OPS, nodes_to_exclude=excluded, per_channel=True,
            reduce_range=settings.reduce_range, activation_type=QuantType[settings.activation_type],
            weight_type=QuantType[settings.weight_type],
            calibrate_method=CalibrationMethod.MinMax, extra_options=dict(settings.extra_options), **cache,
        )
        quantized = onnx.load(dest)
        kept = f", kept float: {', '.join(keep_float)}" if keep_float else ", every Conv quantized"
        props = {p.key: p.value for p in quantized.metadata_props}  # the quantizer copies some keys itself
        props |= {p.key: p.value for p in fp32.metadata_props}
        props["quantization"] = f"int8 QDQ ({target}){kept}{note}"
        onnx.helper.set_model_props(quantized, props)  # one entry per key: onnx.checker rejects repeats
        onnx.save_model(quantized, dest)
    ort.InferenceSession(str(out), session_options(ort), providers=["CPUExecutionProvider"])  # fails if unloadable
    return out


def annotate_int8(model: Path, out: Path, note: str) -> Path:
    """Copy an INT8 model that :func:`write_int8` wrote to ``out`` (atomically) with ``note`` appended
    to its ``quantization`` metadata: the model ``auto`` chose is written once, not quantized again."""
    quantized = onnx.load(model)
    label = next(prop for prop in quantized.metadata_props if prop.key == "quantization")
    label.value += note
    with atomic_path(out) as dest:
        onnx.save_model(quantized, dest)
    return out


def quantize_int8(fp32_onnx: Path, out: Path, calib_dir: Path, *, target: Target = "cpu",
                  calib_size: int = 512, calib_limit: int = 16, keep_float: Sequence[str] = ()) -> Path:
    """Calibrate on the images of ``calib_dir`` and write one INT8 model (:func:`write_int8`)."""
    batches = calibration_batches(calib_dir, calib_size, calib_limit)
    float_conv_nodes(onnx.load(fp32_onnx), keep_float)  # unknown groups fail before any work
    with tempfile.TemporaryDirectory() as tmp:
        return write_int8(prepare_calibration(fp32_onnx, batches, Path(tmp)), out, target=target,
                          keep_float=keep_float)
