"""GPU check: the CUDA paths that CPU machines cannot run, on one CUDA host, printed as one table.

    python -m benchmarks.gpu_check [--checkpoint CKPT] [--out DIR] [--json FILE]

Each row runs one path and says ok, FAIL (with the error's first line) or skip (with what is
missing), what it measured and how long it took:

- ``train``: 3 optimizer steps of NL34 on CUDA with AMP (synthetic 256² scenes);
- ``resume``: 1 step on the CPU (AMP off there), resumed on CUDA with AMP for 2 more (the saved
  gradient scaler state is empty);
- ``predict torch``: the inference pipeline (1024² scene, 512 tiles) with the PyTorch backend on
  ``--device cuda`` against ``cpu``, TF32 off: max |Δp|, mask IoU, speed-up; then on CUDA with
  ``--precision bf16`` and ``fp16`` (autocast) and ``--compile`` (inductor): mask IoU against the
  CPU and speed against CUDA fp32 eager;
- ``onnxruntime cuda:N``: the ONNX artifact on onnxruntime's CUDA provider (GPU 0, and GPU 1 when
  there is one: the provider must report that ``device_id``) against PyTorch on the CPU, and ms
  per 512² tile against onnxruntime on the CPU;
- ``onnxruntime tensorrt``: the opt-in TensorRT provider (engine cache in ``--out``): parity, and
  the second session's start (cached engine) against the first's;
- ``export --trt fp32`` / ``fp16``: ``nltool export --trt`` as the command runs it (reference on
  the CPU, TF32 off; fp16 on a ``gaussian`` pairwise model, the softmax most at risk in FP16): the
  parity it measured, and whether the second build found the first's timing cache;
- ``predict .plan auto``: the fp32 engine through ``load_backend(..., device="auto")``, the path of
  ``nltool predict --model model.fp32.plan``: mask IoU against PyTorch on the CPU, and the GPU
  memory one worker holds (engine file and execution-context memory at the profile's max shape);
- ``torchserve gpu``: a TorchServe GPU worker (checkpoint archive) answering one request.

Random weights unless ``--checkpoint`` (parity is about the arithmetic, and the non-local blocks
are switched on). Without a CUDA GPU it says so and exits 0; it exits 1 when a row fails. The
TensorRT builds dominate its few minutes on an H200.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

TILE = 512
SCENE = 1024


class Skip(Exception):
    """A row that cannot run here; the message says what is missing."""


@dataclass
class Row:
    """One check's outcome."""

    check: str
    status: str
    result: str
    seconds: float


def run_row(rows: list[Row], check: str, work: Callable[[], str]) -> None:
    """Run ``work`` (returns the measured result), record ok, FAIL or skip, and print a progress line."""
    started = time.perf_counter()
    try:
        status, result = "ok", work()
    except Skip as exc:
        status, result = "skip", str(exc)
    except Exception as exc:  # a failed check is a row, not the end of the run
        status, result = "FAIL", f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}"
        traceback.print_exc(file=sys.stderr)
    rows.append(Row(check, status, result, time.perf_counter() - started))
    print(f"... {check}: {status} {result}", file=sys.stderr, flush=True)


def lively_model(arch: str = "nl34-linknet", pairwise: str = "embedded_gaussian") -> torch.nn.Module:
    """Random weights with the non-local blocks switched on and probabilities spread out."""
    from nltool.models import build_model

    torch.manual_seed(0)
    model = build_model(arch, pairwise=pairwise).eval()  # type: ignore[arg-type]
    with torch.no_grad():
        model.decoder.head.conv3.weight.mul_(20)
        for block in (model.encoder.nonlocal3, model.encoder.nonlocal4):
            if block is not None:
                block.W[1].weight.fill_(0.1)
    return model


def compare(expected: np.ndarray, got: np.ndarray) -> tuple[float, float]:
    """(max |Δp|, IoU of the masks at 0.5)."""
    from nltool.metrics import road_iou

    return float(np.abs(expected.astype(np.float64) - got).max()), road_iou(expected > 0.5, got > 0.5)


def predict(artifact: Path, device: str, rgb: np.ndarray, **backend: Any) -> tuple[np.ndarray, float, Any]:
    """(probabilities, seconds, pipeline) of the ``nltool predict`` path (``load_backend`` + the
    pipeline) on ``rgb``, timed after one warm-up tile."""
    from nltool.inference import InferencePipeline, PipelineConfig, load_backend

    pipeline = InferencePipeline(load_backend(artifact, device=device, **backend), PipelineConfig(tile=TILE,
                                                                                                  overlap=64))
    pipeline.predict_proba(rgb[:TILE, :TILE])
    started = time.perf_counter()
    prob = pipeline.predict_proba(rgb)
    return prob, time.perf_counter() - started, pipeline


class Checks:
    """The rows, sharing one folder, checkpoint, ONNX file and CPU reference."""

    def __init__(self, out: Path, checkpoint: Path | None) -> None:
        from benchmarks.common import scene
        from nltool.devices import TF32_OFF, tf32_state
        from nltool.models import save_checkpoint

        self.out = out
        self.checkpoint = checkpoint or save_checkpoint(out / "model.pt", lively_model())
        self.rgb = scene(SCENE)
        self.onnx: Path | None = None
        self.onnx_cpu_seconds: float | None = None
        self.cuda_seconds: float | None = None
        with tf32_state(TF32_OFF):
            self.reference, self.cpu_seconds, _ = predict(self.checkpoint, "cpu", self.rgb)

    def train(self) -> str:
        from nltool.training.trainer import Trainer

        result = Trainer(self._config("train", device="cuda", max_steps=3), log=lambda m: None,
                         show_progress=False).fit()
        return f"{result.global_step} steps, loss {result.history[-1]['train_loss']:.4f}"

    def resume(self) -> str:
        from nltool.models import load_training_state
        from nltool.training.trainer import Trainer

        quiet = {"log": lambda m: None, "show_progress": False}
        first = Trainer(self._config("resume-cpu", device="cpu", max_steps=1), **quiet).fit()  # type: ignore[arg-type]
        assert load_training_state(first.last)["scaler"] == {}, "a CPU run saves an empty scaler state"
        resumed = Trainer(self._config("resume-cuda", device="cuda", max_steps=3), resume=first.last,
                          **quiet).fit()  # type: ignore[arg-type]
        scale = load_training_state(resumed.last)["scaler"].get("scale")
        return f"step {first.global_step} on cpu -> {resumed.global_step} on cuda, AMP scale {scale}"

    def _config(self, name: str, **overrides: Any):
        from nltool.data.synth import SynthConfig, write_synthetic_dataset
        from nltool.training.config import TrainConfig

        data = self.out / "scenes"
        if not data.exists():
            write_synthetic_dataset(data, SynthConfig(n=8, size=256, seed=1))
        return TrainConfig(data=data, out=self.out / name, arch="nl34-linknet", encoder_weights="none", crop=256,
                           batch_size=4, workers=0, seed=3, val_fraction=0.25, amp=True, **overrides)

    def predict_torch(self) -> str:
        from nltool.devices import TF32_OFF, tf32_state

        with tf32_state(TF32_OFF):
            prob, seconds, pipeline = predict(self.checkpoint, "cuda", self.rgb)
        max_abs, iou = compare(self.reference, prob)
        device = pipeline.backend.device
        if max_abs > 1e-4 or iou < 0.999:
            raise AssertionError(f"max |Δp| {max_abs:.2e}, IoU {iou:.4f} on {device}")
        self.cuda_seconds = seconds
        return (f"{device}: max |Δp| {max_abs:.1e}, IoU {iou:.4f}; {seconds:.2f} s vs {self.cpu_seconds:.2f}"
                f" s on cpu ({self.cpu_seconds / seconds:.0f}×)")

    def predict_torch_variant(self, precision: str, compile: bool = False) -> str:
        """The torch backend on CUDA in ``precision`` (autocast) or compiled: mask IoU against the CPU
        fp32 reference and the speed against CUDA fp32 eager."""
        prob, seconds, pipeline = predict(self.checkpoint, "cuda", self.rgb, precision=precision, compile=compile)
        max_abs, iou = compare(self.reference, prob)
        if iou < 0.99 or (precision == "fp32" and max_abs > 1e-3):
            raise AssertionError(f"max |Δp| {max_abs:.2e}, IoU {iou:.4f} ({pipeline.backend.choice})")
        speed = f" ({self.cuda_seconds / seconds:.2f}× cuda fp32 eager)" if self.cuda_seconds else ""
        return f"{pipeline.backend.device}: max |Δp| {max_abs:.1e}, IoU {iou:.4f}; {seconds:.3f} s{speed}"

    def _onnx(self) -> Path:
        if self.onnx is None:
            from nltool.export.onnx_export import export_onnx
            from nltool.models import load_checkpoint

            self.onnx = export_onnx(load_checkpoint(self.checkpoint).model, self.out / "model.onnx")
        return self.onnx

    def onnxruntime(self, index: int) -> str:
        from nltool.optional import require

        ort = require("onnxruntime", "the onnxruntime rows")
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise Skip(f"onnxruntime {ort.__version__} has no CUDA provider (install onnxruntime-gpu: nltool[gpu])")
        if index >= torch.cuda.device_count():
            raise Skip(f"only {torch.cuda.device_count()} GPU(s)")
        prob, seconds, pipeline = predict(self._onnx(), f"cuda:{index}", self.rgb)
        options = pipeline.backend.describe()["provider_options"]["CUDAExecutionProvider"]
        if str(options["device_id"]) != str(index):
            raise AssertionError(f"the CUDA provider runs on device_id {options['device_id']}, not {index}")
        if self.onnx_cpu_seconds is None:
            self.onnx_cpu_seconds = predict(self._onnx(), "cpu", self.rgb)[1]
        max_abs, iou = compare(self.reference, prob)
        tiles = pipeline.num_tiles(SCENE, SCENE)
        return (f"device_id {options['device_id']}: max |Δp| {max_abs:.1e}, IoU {iou:.4f}; "
                f"{seconds / tiles * 1e3:.1f} ms/tile vs {self.onnx_cpu_seconds / tiles * 1e3:.0f} on cpu")

    def onnxruntime_tensorrt(self) -> str:
        from nltool.inference import PipelineConfig
        from nltool.inference.backends.onnxruntime_backend import TensorRTProviderSettings
        from nltool.optional import require

        ort = require("onnxruntime", "the onnxruntime rows")
        if "TensorrtExecutionProvider" not in ort.get_available_providers():
            raise Skip(f"onnxruntime {ort.__version__} has no TensorRT provider")
        settings = TensorRTProviderSettings.for_pipeline(PipelineConfig(tile=TILE, overlap=64), self.out / "ort-trt")
        started = time.perf_counter()
        prob, _, _ = predict(self._onnx(), "cuda", self.rgb, ort_tensorrt=settings)
        first = time.perf_counter() - started
        started = time.perf_counter()
        predict(self._onnx(), "cuda", self.rgb[:TILE, :TILE], ort_tensorrt=settings)
        second = time.perf_counter() - started
        max_abs, iou = compare(self.reference, prob)
        return f"max |Δp| {max_abs:.1e}, IoU {iou:.4f}; start+run {first:.1f} s, cached start+tile {second:.1f} s"

    def export_trt(self, precision: str) -> str:
        from nltool.export.artifacts import ExportRequest, export_artifacts
        from nltool.export.tensorrt_build import EngineProfile
        from nltool.models import save_checkpoint
        from nltool.optional import MissingDependencyError, require

        try:
            trt = require("tensorrt", "the TensorRT rows")
        except MissingDependencyError as exc:
            raise Skip(str(exc)) from exc
        checkpoint = self.checkpoint
        if precision == "fp16":
            checkpoint = save_checkpoint(self.out / "gaussian.pt", lively_model(pairwise="gaussian"))
        caches = sorted((self.out / "cache" / "tensorrt").glob("*.cache"))
        cache_before = caches[0].stat().st_size if caches else 0
        request = ExportRequest(checkpoint=checkpoint, out=self.out / f"export-{precision}", trt=True,
                                fp16=precision == "fp16", device="cpu", cache=self.out / "cache",
                                profile=EngineProfile(min_side=256, opt_side=512, max_side=512, max_batch=2))
        result = export_artifacts(request, log=lambda m: None)
        engine = next(r for r in result.reports if r.precision == precision)
        cache = next((self.out / "cache" / "tensorrt").glob("*.cache"))
        verdict = "passed" if engine.passed else f"FAILED ({engine.failure()})"
        if not engine.passed:
            raise AssertionError(f"TensorRT {trt.__version__} {precision}: {verdict}")
        return (f"TensorRT {trt.__version__}: max |Δp| {engine.max_abs:.1e}, IoU {engine.min_mask_iou:.4f} {verdict}; "
                f"timing cache {cache_before} -> {cache.stat().st_size} bytes")

    def predict_plan(self) -> str:
        plan = self.out / "export-fp32" / "model.fp32.plan"
        if not plan.exists():
            raise Skip("no fp32 engine (the export row did not run)")
        prob, seconds, pipeline = predict(plan, "auto", self.rgb)
        max_abs, iou = compare(self.reference, prob)
        backend = pipeline.backend
        memory = backend.engine.device_memory_size_v2 / 2**20  # activations for the profile's largest input
        return (f"{backend.device}: max |Δp| {max_abs:.1e}, IoU {iou:.4f}; {seconds:.2f} s; per worker: engine "
                f"{plan.stat().st_size / 2**20:.0f} MiB + context {memory:.0f} MiB at {backend.profile()[-1]}")

    def torchserve(self) -> str:
        import shutil

        if shutil.which("torchserve") is None or shutil.which("java") is None:
            raise Skip("torchserve or java is not installed (nltool[serve], Java 17)")
        from nltool.imagery import encode_png
        from nltool.serving.client import RestClient
        from nltool.serving.package import package_model
        from nltool.serving.server import LocalTorchServe, free_ports
        from nltool.serving.settings import ServingSettings

        ports = free_ports(1)
        store = self.out / "store"
        settings = ServingSettings.from_dict({"tile": TILE, "overlap": 64})
        package_model(self.checkpoint, store, name="nllinknet", settings=settings, ports=ports, force=True)
        with LocalTorchServe(store, ["nllinknet"], self.out / "server", ports) as server:
            client = RestClient(server.url, "nllinknet", token=server.token(), timeout=600.0, retries=0)
            _, summary = client.predict_with_summary(encode_png(self.rgb))
            log = server.model_log.read_text() if server.model_log.exists() else ""
        worker = re.search(r"nltool backend (\w+) on (\S+)", log)
        if worker is None or not worker[2].startswith("cuda:"):
            raise AssertionError(f"the worker did not log a CUDA device ({worker[0] if worker else 'no log line'})")
        return (f"{worker[1]} worker on {worker[2]}: road {summary['road_fraction']:.1%}, "
                f"backend {summary['seconds']['backend']:.2f} s")


def versions() -> str:
    """torch/CUDA/cuDNN, onnxruntime and its CUDA build, TensorRT, and the GPUs."""
    from nltool.optional import MissingDependencyError, require

    parts = [f"torch {torch.__version__} (CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()})"]
    for module in ("onnxruntime", "tensorrt"):
        try:
            parts.append(f"{module} {require(module, 'the versions row').__version__}")
        except MissingDependencyError:
            parts.append(f"no {module}")
    try:
        from onnxruntime.capi import build_and_package_info

        parts.append(f"onnxruntime built for CUDA {getattr(build_and_package_info, 'cuda_version', 'none')}")
    except ImportError:
        pass
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return "; ".join(parts) + f"; {len(gpus)} GPU(s): {', '.join(sorted(set(gpus)))}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, help="a trained NL34 checkpoint (default: random weights)")
    parser.add_argument("--out", type=Path, help="working folder (default: temporary)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print(f"no CUDA GPU is visible (torch {torch.__version__}, CUDA build {torch.version.cuda}): nothing to check")
        return 0

    from benchmarks.common import machine_line

    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        run_row(rows, "versions", versions)
        checks = Checks(out, args.checkpoint)
        run_row(rows, "train cuda amp", checks.train)
        run_row(rows, "resume cpu -> cuda amp", checks.resume)
        run_row(rows, "predict torch cuda vs cpu", checks.predict_torch)
        run_row(rows, "predict torch cuda bf16", lambda: checks.predict_torch_variant("bf16"))
        run_row(rows, "predict torch cuda fp16", lambda: checks.predict_torch_variant("fp16"))
        run_row(rows, "predict torch cuda compile", lambda: checks.predict_torch_variant("fp32", compile=True))
        run_row(rows, "onnxruntime cuda:0", lambda: checks.onnxruntime(0))
        run_row(rows, "onnxruntime cuda:1", lambda: checks.onnxruntime(1))
        run_row(rows, "onnxruntime tensorrt", checks.onnxruntime_tensorrt)
        run_row(rows, "export --trt fp32", lambda: checks.export_trt("fp32"))
        run_row(rows, "export --trt fp16 gaussian", lambda: checks.export_trt("fp16"))
        run_row(rows, "predict .plan --device auto", checks.predict_plan)
        run_row(rows, "torchserve gpu worker", checks.torchserve)

    print(machine_line())
    print(f"# python -m benchmarks.gpu_check {' '.join(sys.argv[1:])}")
    print(f"# {'random weights' if args.checkpoint is None else args.checkpoint}, {SCENE}² scene, tile {TILE}")
    width = max(len(row.check) for row in rows)
    print(f"{'check':<{width}}  status  {'seconds':>7}  result")
    for row in rows:
        print(f"{row.check:<{width}}  {row.status:<6}  {row.seconds:7.1f}  {row.result}")
    if args.json:
        args.json.write_text(json.dumps([asdict(row) for row in rows], indent=2))
    return 1 if any(row.status == "FAIL" for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
