"""INT8: a QDQ ONNX from onnxruntime's static quantization, calibrated on the user's images.

Calibration images go through the same preprocessing as inference (``nltool.imagery``: any
supported format, RGB 0-255, centre tile of ``calib_size``, padded like the pipeline pads).
Weights are quantized per channel; every Conv is quantized, everything else stays float. Measured
on a trained NL34 (docs/performance.md): keeping the non-local theta/phi/g convs and the head conv
in float as well gained at most 0.0015 mask IoU and cost 5-8% of the speed-up, and quantizing
ConvTranspose made the model slower and less accurate, so neither is done.

Two flavours: ``cpu`` (uint8 activations, int8 weights: onnxruntime's fast path on x86) and
``tensorrt`` (symmetric int8 activations and weights, no quantized biases: what TensorRT's
explicit quantization accepts).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import onnx

from nltool.errors import ImageError
from nltool.fileio import atomic_path
from nltool.imagery import open_image
from nltool.inference.backends.onnxruntime_backend import INPUT_NAME, import_onnxruntime
from nltool.inference.tiling import round_up
from export.onnx_export import ExportError

Target = Literal["cpu", "tensorrt"]
QUANTIZED_OPS = ["Conv"]
"""Only convolutions: onnxruntime has no int8 ConvTranspose kernel (QDQ around it only adds
conversions), and MatMul/Softmax of the non-local attention, Add and Sigmoid stay float."""
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff")


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


def quantize_int8(fp32_onnx: Path, out: Path, calib_dir: Path, *, target: Target = "cpu",
                  calib_size: int = 512, calib_limit: int = 16) -> Path:
    """Write a QDQ INT8 model with the same ``image``/``prob`` I/O as ``fp32_onnx``, atomically."""
    ort = import_onnxruntime()
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType
    from onnxruntime.quantization import quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    batches = calibration_batches(calib_dir, calib_size, calib_limit)

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it: Iterator[np.ndarray] = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self._it, None)
            return None if batch is None else {INPUT_NAME: batch}

    symmetric = target == "tensorrt"
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        # Folds Conv+BatchNorm and infers shapes; symbolic shape inference cannot follow the
        # dynamic non-local reshapes, so it is skipped (as onnxruntime's docs allow).
        quant_pre_process(str(fp32_onnx), str(prepared), skip_symbolic_shape=True)
        with atomic_path(out) as dest:
            quantize_static(
                str(prepared), str(dest), _Reader(), quant_format=QuantFormat.QDQ,
                op_types_to_quantize=QUANTIZED_OPS, per_channel=True,
                activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8, weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
                extra_options={"ActivationSymmetric": symmetric, "WeightSymmetric": True,
                               "QuantizeBias": not symmetric, "AddQDQPairToWeight": symmetric},
            )
            quantized = onnx.load(dest)
            for prop in onnx.load(fp32_onnx).metadata_props:
                quantized.metadata_props.add(key=prop.key, value=prop.value)
            quantized.metadata_props.add(key="quantization", value=f"int8 QDQ ({target})")
            onnx.save_model(quantized, dest)
    ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])  # fails loudly if unloadable
    return out
