"""OpenVINO INT8: NNCF post-training quantization of the FP32 ONNX, saved as OpenVINO IR.

OpenVINO runs nltool's onnxruntime-flavour QDQ ONNX fast but wrongly (measured: mask IoU 0.21
against FP32, docs/performance.md), so its INT8 model is made by NNCF, OpenVINO's own quantizer,
from the same calibration images as the QDQ model (:func:`nltool.export.quantize.calibration_batches`).
The IR keeps float32 weights for the layers NNCF leaves in float (``compress_to_fp16=False``) and
carries the ONNX's metadata in its ``rt_info`` under ``nltool``. Both files (``.xml`` + ``.bin``)
are written beside each other and moved into place only when the quantization succeeded.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Literal

import onnx

from nltool.export.onnx_export import ExportError
from nltool.export.quantize import calibration_batches
from nltool.inference.backends.openvino_backend import RT_INFO_KEY, import_openvino
from nltool.optional import require

OPENVINO_INT8_NAME = "model.openvino-int8.xml"
"""The INT8 IR's file name in an export folder (its weights: ``model.openvino-int8.bin``)."""
Preset = Literal["performance", "mixed"]


def onnx_metadata_props(path: Path) -> dict[str, str]:
    """An ONNX file's metadata (arch, normalization, nltool version ...)."""
    return {prop.key: prop.value for prop in onnx.load(path).metadata_props}


def quantize_openvino_int8(fp32_onnx: Path, out: Path, calib_dir: Path, *, calib_size: int = 512,
                           calib_limit: int = 16, preset: Preset = "performance") -> Path:
    """Quantize ``fp32_onnx`` with NNCF on the calibration images of ``calib_dir`` and write the IR
    ``out`` (``.xml``; its ``.bin`` beside it). ``preset``: NNCF's quantization preset (symmetric
    activations, or ``mixed``: asymmetric activations)."""
    if out.suffix != ".xml":
        raise ExportError(f"an OpenVINO IR is written as .xml + .bin; {out.name} does not end in .xml")
    ov = import_openvino()
    nncf = require("nncf", "quantizing OpenVINO INT8 models")
    batches = calibration_batches(calib_dir, calib_size, calib_limit)
    try:
        model = ov.Core().read_model(str(fp32_onnx))
        quantized = nncf.quantize(model, nncf.Dataset(batches), subset_size=len(batches),
                                  preset=getattr(nncf.QuantizationPreset, preset.upper()))
    except Exception as exc:  # OpenVINO and NNCF raise their own RuntimeError subclasses
        raise ExportError(f"NNCF could not quantize {fp32_onnx}: {str(exc).strip().splitlines()[0]}") from exc
    for key, value in onnx_metadata_props(fp32_onnx).items():
        quantized.set_rt_info(value, [RT_INFO_KEY, key])
    quantized.set_rt_info(f"int8 NNCF ({preset} preset, openvino)", [RT_INFO_KEY, "quantization"])
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out.stem}.", dir=out.parent) as tmp:
        staged = Path(tmp) / out.name
        ov.save_model(quantized, str(staged), compress_to_fp16=False)
        os.replace(staged.with_suffix(".bin"), out.with_suffix(".bin"))  # the weights first: the .xml is the entry
        os.replace(staged, out)
    return out
