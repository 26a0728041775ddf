"""INT8 for OpenVINO: NNCF post-training quantization with accuracy control on mask IoU.

``nltool export --int8 --int8-engine openvino`` quantizes the FP32 ONNX to an OpenVINO IR
(``model.int8.xml`` + ``.bin``) with :func:`nncf.quantize_with_accuracy_control`: NNCF quantizes
every operation it can, then returns the ones that hurt the metric most to float, one after the
other, until the metric holds. The metric is nltool's: the road-mask IoU of the quantized model
against the FP32 model on the held-out calibration images (every fourth, as for onnxruntime's
``--int8-keep-float auto``), and the drop allowed is ``1 - tolerance`` (IoU >= 0.98 by default).
The model NNCF returns is then measured again on the held-out images and on the INT8 parity
scenes, compiled as a user runs it; below the tolerance the export fails, says what it measured,
and writes nothing. Float operations run in bf16 on CPUs with native bf16 (the backend's int8).
Why OpenVINO's plain INT8 was wrong on a trained NL34: docs/performance.md.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from nltool.export.int8_auto import split_calibration
from nltool.export.onnx_export import Int8GateError
from nltool.export.parity import int8_cases, stacked_mask
from nltool.export.quantize import calibration_batches
from nltool.inference.backends.onnxruntime_backend import INPUT_NAME
from nltool.inference.backends.openvino_backend import OpenVinoBackend, import_openvino
from nltool.metrics import road_iou
from nltool.optional import require

MAX_ITERATIONS = 12
"""NNCF's accuracy restorer runs at most this many iterations, each returning one group of quantizers
(one or more operations: 12 steps returned 16 operations on the gate test's model) to float and
re-validating the model; measured on the trained NL34s of docs/performance.md."""
NNCF_LOGGER = "nncf"
RT_INFO = "nltool"
"""The IR's ``rt_info`` section holding the FP32 model's metadata and the quantization record."""


def import_nncf() -> ModuleType:
    """Import NNCF or say how to install it."""
    return require("nncf", "OpenVINO INT8 export (--int8-engine openvino)")


@dataclass
class OpenVinoInt8Choice:
    """What NNCF's accuracy control kept float and what was measured (``parity.json``)."""

    tolerance: float
    calibration_images: int
    held_out_images: int
    held_out_separate: bool
    held_out_iou: float
    scenes_iou: float
    quantized_ops: int
    float_ops: list[str]
    seconds: float

    @property
    def iou(self) -> float:
        """What the gate judges: the lower of the two."""
        return min(self.held_out_iou, self.scenes_iou)

    def to_dict(self) -> dict[str, Any]:
        return {"engine": "openvino (NNCF quantize_with_accuracy_control)", "tolerance_min_mask_iou": self.tolerance,
                "calibration_images": self.calibration_images, "held_out_images": self.held_out_images,
                "held_out_separate_from_calibration": self.held_out_separate,
                "measured_against": "model.onnx (FP32, OpenVINO f32) on the held-out images and on the INT8 "
                                    "parity scenes",
                "held_out_iou": self.held_out_iou, "scenes_iou": self.scenes_iou, "iou": self.iou,
                "quantized_ops": self.quantized_ops, "kept_float": self.float_ops,
                "seconds": round(self.seconds, 1)}

    def note(self) -> str:
        """The ``quantization`` metadata value of the IR."""
        return (f"int8 NNCF accuracy control (openvino), {len(self.float_ops)} op(s) returned to float; mask IoU "
                f"{self.iou:.4f} vs FP32 (tolerance {self.tolerance}, {self.held_out_images} held-out images + "
                "parity scenes)")


def masks(run: Callable[[np.ndarray], np.ndarray], batches: Sequence[np.ndarray]) -> np.ndarray:
    """Every batch's road mask, stacked into one (N·H)×W array (road IoU pools the whole set)."""
    return np.concatenate([stacked_mask(run(batch)) for batch in batches])


def fake_quantized(model: Any) -> list[str]:
    """Names of the operations fed by a FakeQuantize (the quantized ones) in an OpenVINO model."""
    return sorted({target.get_node().get_friendly_name() for op in model.get_ordered_ops()
                   if op.get_type_name() == "FakeQuantize" for target in op.output(0).get_target_inputs()})


def build_openvino_int8(fp32_onnx: Path, out: Path, calib_dir: Path, work: Path, *, tolerance: float,
                        calib_size: int = 512, calib_limit: int = 16, metadata: dict[str, str] | None = None,
                        log: Callable[[str], None] = print) -> OpenVinoInt8Choice:
    """Quantize ``fp32_onnx`` with accuracy control and write the IR ``out`` (``.xml``; its ``.bin``
    beside it) when its masks hold ``tolerance``; otherwise raise :class:`Int8GateError` and write
    nothing to ``out``. ``work`` is a folder the caller removes (the IR is measured there first)."""
    nncf = import_nncf()
    ov = import_openvino()
    from nncf.quantization.advanced_parameters import AdvancedAccuracyRestorerParameters

    started = time.perf_counter()
    batches = calibration_batches(calib_dir, calib_size, calib_limit)
    calib_idx, held_idx = split_calibration(len(batches))
    calibration, held = [batches[i] for i in calib_idx], [batches[i] for i in held_idx]
    scenes = [np.asarray(case.batch[i:i + 1], dtype=np.float32) for case in int8_cases()
              for i in range(case.batch.shape[0])]
    fp32 = OpenVinoBackend(fp32_onnx, precision="fp32")
    expected_held, expected_scenes = masks(fp32.run, held), masks(fp32.run, scenes)

    def validate(compiled: Any, data: Any) -> tuple[float, list[float]]:
        """NNCF's metric: pooled mask IoU vs FP32 over the held-out images (and one per image, for ranking)."""
        got = [stacked_mask(compiled({INPUT_NAME: batch})[0]) for batch in data]
        truth = [stacked_mask(fp32.run(batch)) for batch in data]
        per_image = [road_iou(g, t) for g, t in zip(got, truth, strict=True)]
        return road_iou(np.concatenate(got), np.concatenate(truth)), per_image

    log(f"quantizing with NNCF accuracy control: {len(calibration)} calibration image(s), {len(held)} held out, "
        f"mask IoU >= {tolerance} vs FP32")
    with RevertedOps() as reverted:
        quantized = nncf.quantize_with_accuracy_control(
            ov.Core().read_model(str(fp32_onnx)), nncf.Dataset(calibration), nncf.Dataset(held), validate,
            max_drop=1.0 - tolerance, subset_size=len(calibration),
            advanced_accuracy_restorer_parameters=AdvancedAccuracyRestorerParameters(
                max_num_iterations=MAX_ITERATIONS))
    float_ops = reverted.names
    work.mkdir(parents=True, exist_ok=True)
    draft = work / out.name
    ov.save_model(quantized, str(draft), compress_to_fp16=False)
    candidate = OpenVinoBackend(draft, precision="int8")
    choice = OpenVinoInt8Choice(
        tolerance=tolerance, calibration_images=len(calibration), held_out_images=len(held),
        held_out_separate=held_idx != calib_idx, held_out_iou=road_iou(masks(candidate.run, held), expected_held),
        scenes_iou=road_iou(masks(candidate.run, scenes), expected_scenes),
        quantized_ops=len(fake_quantized(quantized)), float_ops=float_ops, seconds=time.perf_counter() - started)
    log(f"OpenVINO INT8: mask IoU {choice.iou:.4f} vs FP32 ({choice.quantized_ops} quantized ops, "
        f"{len(float_ops)} returned to float)")
    if choice.iou < tolerance:
        raise Int8GateError(
            f"OpenVINO INT8 cannot keep masks within mask IoU {tolerance} of FP32 for this model: NNCF's accuracy "
            f"control returned {len(float_ops)} operation(s) to float (in at most {MAX_ITERATIONS} steps) and reached "
            f"{choice.held_out_iou:.4f} on {len(held)} held-out calibration image(s), {choice.scenes_iou:.4f} on the "
            "parity scenes. Calibrate on more images like those you serve, use --int8-engine onnxruntime, or "
            "export without --int8. No INT8 model was written.")
    for key, value in {**(metadata or {}), "quantization": choice.note()}.items():
        quantized.set_rt_info(value, [RT_INFO, key])
    ov.save_model(quantized, str(draft), compress_to_fp16=False)
    draft.with_suffix(".bin").replace(out.with_suffix(".bin"))
    draft.replace(out)
    return choice



class RevertedOps(logging.Handler):
    """The operations NNCF's accuracy control returned to float, read from its log (NNCF returns only
    the model; its last report is "N out of M were reverted back to the floating-point precision:"
    followed by one name per line)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.names: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "reverted back to the floating-point precision" in message:
            self.names = sorted(line.strip() for line in message.splitlines()[1:] if line.strip())

    def __enter__(self) -> RevertedOps:
        logging.getLogger(NNCF_LOGGER).addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger(NNCF_LOGGER).removeHandler(self)
