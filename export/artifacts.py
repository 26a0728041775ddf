"""``nltool export``: checkpoint -> ONNX (+ INT8 QDQ, + TensorRT engines), each with measured parity.

Everything is built in a staging folder inside ``out`` and moved into place only when every step
succeeded, so an error (bad checkpoint, missing runtime, failed build, an INT8 model that no
``--int8-keep-float auto`` choice keeps within tolerance) leaves no partial artifacts. A parity
failure keeps the artifacts and ``parity.json`` for inspection, but the command fails and says by
how much. The exporter always traces the model on the CPU; the PyTorch reference is a copy on
``--device`` (:mod:`nltool.export.reference`). TensorRT's timing cache lives in nltool's cache
folder, so every later export on the same GPU and TensorRT reuses it; ``out/timing.cache`` is a
copy of it.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

import torch

from nltool.cache import cache_dir
from nltool.devices import tf32_state, visible_cuda
from nltool.export.int8_auto import AUTO, Int8Choice, KeepFloat
from nltool.export.onnx_export import DEFAULT_OPSET, ExportError, export_onnx, onnx_metadata
from nltool.export.parity import (
    TOLERANCES,
    ParityCase,
    ParityReport,
    int8_cases,
    measure_parity,
    random_case,
    scene_case,
    write_parity,
)
from nltool.export.quantize import Calibration, check_keep_float
from nltool.export.reference import ParitySetup, parity_setup, reference_backend
from nltool.export.tensorrt_build import EngineProfile
from nltool.fileio import file_sha256
from nltool.inference.backends.onnxruntime_backend import OnnxRuntimeBackend, import_onnxruntime
from nltool.inference.backends.tensorrt_backend import import_tensorrt, require_cuda
from nltool.inference.backends.torch_backend import TorchBackend
from nltool.inference.config import Precision
from nltool.models import NLLinkNet, Pairwise, load_checkpoint

Int8Engine = Literal["onnxruntime", "openvino"]
INT8_ENGINES: tuple[str, ...] = get_args(Int8Engine)
INT8_FILES: dict[str, list[str]] = {"onnxruntime": ["model.int8.onnx"],
                                    "openvino": ["model.int8.xml", "model.int8.bin"]}
"""The INT8 artifact of each engine (an OpenVINO IR is two files)."""


@dataclass(frozen=True)
class ExportRequest:
    """What to build from which checkpoint."""

    checkpoint: Path
    out: Path
    arch: str | None = None
    pairwise: Pairwise | None = None
    onnx: bool = True
    trt: bool = False
    fp16: bool = False
    int8: bool = False
    calib: Path | None = None
    int8_keep_float: KeepFloat = AUTO
    """Conv groups INT8 leaves float, or ``auto``: the fewest that keep INT8's mask tolerance."""
    int8_tolerance: float = TOLERANCES["int8"].min_mask_iou
    """The mask IoU vs FP32 that ``auto`` must reach (the INT8 parity gate's)."""
    int8_engine: Int8Engine = "onnxruntime"
    """What runs the INT8 model: onnxruntime (a QDQ ONNX) or openvino (an NNCF IR, accuracy-controlled)."""
    opset: int = DEFAULT_OPSET
    profile: EngineProfile = field(default_factory=EngineProfile)
    workspace_gib: float = 4.0
    device: str = "cpu"
    force: bool = False
    cache: Path = field(default_factory=cache_dir)
    """nltool's cache folder: TensorRT's timing cache is read from and written to it."""

    def planned_files(self) -> list[str]:
        """Names of the artifacts this request writes into ``out``."""
        names = ["parity.json"]
        if self.onnx:
            names.append("model.onnx")
        if self.int8:
            names += INT8_FILES[self.int8_engine]
        if self.trt:
            for precision in self.engine_precisions():
                names += [f"model.{precision}.plan", f"model.{precision}.json"]
            names.append("timing.cache")
        return names

    def engine_precisions(self) -> list[Precision]:
        """The TensorRT engines to build: FP16 or FP32, plus INT8 with --int8."""
        return ["fp16" if self.fp16 else "fp32", *(["int8"] if self.int8 else [])]  # type: ignore[list-item]


@dataclass
class ExportResult:
    """The files written and the parity of each artifact."""

    files: list[Path]
    reports: list[ParityReport]
    parity: Path

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.reports)


def check_request(request: ExportRequest) -> None:
    """Refuse a request that cannot succeed, before any work: each problem says what to do."""
    if not (request.onnx or request.trt or request.int8):
        raise ExportError("nothing to export: keep --onnx, or add --trt or --int8")
    if request.int8 and request.calib is None:
        raise ExportError("--int8 needs calibration images: pass --calib DIR (a folder of images like those you "
                          "will serve, e.g. a few DeepGlobe *_sat.jpg scenes)")
    if request.fp16 and not request.trt:
        raise ExportError("--fp16 applies to TensorRT engines: add --trt")
    if request.int8_keep_float not in (AUTO, ()) and not request.int8:
        raise ExportError("--int8-keep-float applies to INT8: add --int8 --calib DIR")
    if request.int8_keep_float != AUTO:
        check_keep_float(request.int8_keep_float)
    if request.int8_engine not in INT8_ENGINES:
        raise ExportError(f"--int8-engine must be one of {', '.join(INT8_ENGINES)}, got {request.int8_engine!r}")
    if request.int8 and request.int8_engine == "openvino":
        if request.trt:
            raise ExportError("TensorRT's INT8 engine is built from onnxruntime's QDQ model: use --int8-engine "
                              "onnxruntime with --trt, or export the OpenVINO INT8 model separately")
        if request.int8_keep_float not in (AUTO, ()):
            raise ExportError("--int8-keep-float applies to --int8-engine onnxruntime; OpenVINO's accuracy control "
                              "chooses what stays float itself")
        from nltool.export.openvino_int8 import import_nncf

        import_nncf()
    if request.trt:
        require_cuda()
        import_tensorrt()
    import_onnxruntime()  # parity of every ONNX artifact runs on onnxruntime
    existing = [name for name in request.planned_files() if (request.out / name).exists()]
    if existing and not request.force:
        raise ExportError(f"{request.out} already holds {', '.join(existing)}; pass --force to replace them")
    try:
        request.out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=request.out, prefix=".nltool-write-test-"):
            pass
    except OSError as exc:
        raise ExportError(f"cannot write to {request.out}: {exc}") from exc


def export_artifacts(request: ExportRequest, log: Callable[[str], None] = print) -> ExportResult:
    """Build every requested artifact, measure its parity, and move it all into ``request.out``."""
    check_request(request)
    loaded = load_checkpoint(request.checkpoint, arch=request.arch, pairwise=request.pairwise)
    cuda_count, current = visible_cuda(need_current=request.trt or request.device != "cpu")
    setup = parity_setup(request.device, trt=request.trt, cuda_count=cuda_count, current=current)
    reference = reference_backend(loaded.model, setup, source=str(request.checkpoint))
    staging = Path(tempfile.mkdtemp(prefix=".nltool-export-", dir=request.out))
    try:
        with tf32_state(setup.tf32):
            reports = _build(request, loaded.model, reference, setup, staging, log)
        parity = write_parity(staging / "parity.json", reports, reference=str(request.checkpoint))
        kept = [name for name in request.planned_files() if (staging / name).exists()]
        files = []
        for name in kept:
            (staging / name).replace(request.out / name)
            files.append(request.out / name)
        return ExportResult(files=files, reports=reports, parity=request.out / parity.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _build(request: ExportRequest, model: NLLinkNet, reference: TorchBackend, setup: ParitySetup, staging: Path,
           log: Callable[[str], None]) -> list[ParityReport]:
    reports: list[ParityReport] = []
    onnx_path = staging / "model.onnx"
    log(f"exporting {model.config.arch} to ONNX (opset {request.opset})")
    metadata = onnx_metadata(model, source=request.checkpoint.name, source_sha256=file_sha256(request.checkpoint))
    export_onnx(model, onnx_path, opset=request.opset, metadata=metadata)
    log("measuring ONNX parity against the checkpoint")
    reports.append(measure_parity(reference, OnnxRuntimeBackend(onnx_path, device="cpu"),
                                  str(request.out / "model.onnx"), "fp32"))
    int8 = None
    if request.int8 and request.int8_engine == "openvino":
        reports.append(_build_openvino_int8(request, onnx_path, metadata, reference, staging, log))
    elif request.int8:
        from nltool.export.int8_auto import build_int8

        keep = request.int8_keep_float
        log(f"quantizing to INT8 with calibration images from {request.calib} "
            f"(--int8-keep-float {keep if keep == AUTO else ','.join(keep) or 'none'})")
        int8 = build_int8(onnx_path, staging / "model.int8.onnx", request.calib,  # type: ignore[arg-type]
                          staging / "int8-work", keep_float=request.int8_keep_float,
                          tolerance=request.int8_tolerance, log=log)
        report = measure_parity(reference, OnnxRuntimeBackend(staging / "model.int8.onnx", device="cpu"),
                                str(request.out / "model.int8.onnx"), "int8", int8_cases())
        report.quantization = int8[0].to_dict()
        reports.append(report)
    if request.trt:
        reports += _build_engines(request, onnx_path, reference, setup, staging, log, int8)
    if not request.onnx:
        onnx_path.unlink()
    return reports


def _build_openvino_int8(request: ExportRequest, onnx_path: Path, metadata: dict[str, str], reference: TorchBackend,
                         staging: Path, log: Callable[[str], None]) -> ParityReport:
    """The accuracy-controlled OpenVINO INT8 IR and its parity against the checkpoint."""
    from nltool.export.openvino_int8 import build_openvino_int8
    from nltool.inference.backends.openvino_backend import OpenVinoBackend

    assert request.calib is not None  # check_request refuses --int8 without --calib
    log(f"quantizing to OpenVINO INT8 (NNCF accuracy control) with calibration images from {request.calib}")
    xml = staging / "model.int8.xml"
    choice = build_openvino_int8(onnx_path, xml, request.calib, staging / "int8-work", tolerance=request.int8_tolerance,
                                 metadata=metadata, log=log)
    report = measure_parity(reference, OpenVinoBackend(xml, precision="int8"), str(request.out / xml.name), "int8",
                            int8_cases())
    report.quantization = choice.to_dict()
    return report


def engine_cases(profile: EngineProfile, precision: str) -> list[ParityCase]:
    """Parity inputs inside the engine's optimization profile (an engine refuses other shapes):
    noise at the smallest side (not for INT8, see :func:`int8_cases`) and synthetic scenes."""
    side = min(max(512, profile.min_side), profile.max_side)
    scenes = scene_case(min(4 if precision == "int8" else 2, profile.max_batch), side)
    if precision == "int8":
        return [scenes]
    return [random_case(1, profile.min_side, profile.min_side, torch.Generator().manual_seed(0)), scenes]


def _build_engines(request: ExportRequest, onnx_path: Path, reference: TorchBackend, setup: ParitySetup,
                   staging: Path, log: Callable[[str], None],
                   int8: tuple[Int8Choice, Calibration] | None) -> list[ParityReport]:
    """Build and measure each engine; the INT8 one starts from a TensorRT-flavour QDQ ONNX with the
    CPU INT8 model's float groups and calibration (its own masks are only measured after the build)."""
    from nltool.export.tensorrt_build import build_engine, fp16_onnx, timing_cache_path, write_sidecar
    from nltool.inference.backends.tensorrt_backend import TensorRTBackend

    device = setup.engine
    assert device is not None  # parity_setup names the engine's GPU whenever TensorRT is requested
    trt = import_tensorrt()
    timing_cache = timing_cache_path(request.cache, trt.__version__, torch.cuda.get_device_capability(device.index))
    timing_cache.parent.mkdir(parents=True, exist_ok=True)
    reports = []
    for precision in request.engine_precisions():
        source = onnx_path
        if precision == "int8":
            from nltool.export.quantize import write_int8

            assert int8 is not None  # engine_precisions has int8 only with --int8, which builds the CPU model first
            choice, calibration = int8
            source = write_int8(calibration, staging / "model.int8.trt.onnx", target="tensorrt",
                                keep_float=choice.keep_float, note=choice.note())
        elif precision == "fp16" and not hasattr(trt.BuilderFlag, "FP16"):
            source = fp16_onnx(onnx_path, staging / "model.fp16.onnx")
        plan = staging / f"model.{precision}.plan"
        log(f"building the TensorRT {precision} engine on {device}")
        with torch.cuda.device(device.index):
            sidecar = build_engine(source, plan, precision=precision, profile=request.profile,
                                   workspace_gib=request.workspace_gib, timing_cache=timing_cache)
        report = measure_parity(reference, TensorRTBackend(plan, device=str(device)), str(request.out / plan.name),
                                precision, engine_cases(request.profile, precision))
        if precision == "int8" and int8 is not None:
            report.quantization = {**int8[0].to_dict(), "chosen_on": "the CPU INT8 model (onnxruntime)"}
        write_sidecar(plan, {**sidecar, "parity": report.to_dict()})
        reports.append(report)
    shutil.copyfile(timing_cache, staging / "timing.cache")
    return reports
