"""OpenVINO fp32, bf16 and INT8 against onnxruntime FP32 and INT8: seconds per call, ratios, mask IoU.

    python -m benchmarks.openvino_speed --checkpoint runs/nl34/best.pt --sizes 1024 2048 --batches 1 8

Exports the checkpoint (random NL34 weights if none is given: fine for speed, meaningless for
IoU), quantizes it twice from the same calibration images (16 synthetic training scenes of
256², seed 0): onnxruntime's QDQ (``nltool export --int8``) and an OpenVINO IR by NNCF's
post-training quantization (default settings, which give wrong masks on a trained NL34; the
shipped OpenVINO INT8 is `nltool export --int8 --int8-engine openvino`, with accuracy control). Then, in
one process with ``--threads`` threads each, times every engine on every size × batch (median
of ``--repeats`` calls after a warm-up) and prints the ratio to onnxruntime FP32, and the mask
IoU of each engine against onnxruntime FP32 on 4 synthetic scenes of 512² (seed 1). ``--qdq``
also runs OpenVINO on the two QDQ ONNX flavours (cpu, tensorrt) of ``nltool.export.quantize``.
Each engine's first run is also a crash check: the table says which ran on this CPU.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks.common import machine_line, median_run_seconds, model_from, scene
from nltool.data.synth import SynthConfig, write_synthetic_dataset
from nltool.export.onnx_export import export_onnx
from nltool.export.parity import scene_case, stacked_mask
from nltool.export.quantize import calibration_batches, quantize_int8
from nltool.inference.backends.base import Backend
from nltool.inference.backends.onnxruntime_backend import OnnxRuntimeBackend
from nltool.inference.backends.openvino_backend import OpenVinoBackend, cpu_capabilities, import_openvino
from nltool.metrics import road_iou
from nltool.optional import require


def nncf_int8(fp32: Path, out: Path, calib: Path) -> Path:
    """NNCF's post-training INT8 of ``fp32`` on the calibration images, as an IR with float32 weights."""
    nncf = require("nncf", "OpenVINO's INT8 in this benchmark")  # the [openvino-int8] extra
    ov = import_openvino()
    batches = calibration_batches(calib, 256)
    quantized = nncf.quantize(ov.Core().read_model(str(fp32)), nncf.Dataset(batches), subset_size=len(batches))
    ov.save_model(quantized, str(out), compress_to_fp16=False)
    return out


def engines(folder: Path, calib: Path, threads: int, qdq: bool) -> dict[str, Callable[[], Backend]]:
    """Engine name -> a constructor, artifacts built in ``folder`` (each quantization timed and printed)."""
    fp32 = folder / "model.onnx"
    started = time.perf_counter()
    int8 = quantize_int8(fp32, folder / "model.int8.onnx", calib, calib_size=256)
    print(f"# onnxruntime QDQ INT8 made in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    ov_int8 = nncf_int8(fp32, folder / "model.openvino-int8.xml", calib)
    print(f"# OpenVINO NNCF INT8 made in {time.perf_counter() - started:.1f} s")
    made: dict[str, Callable[[], Backend]] = {
        "onnxruntime fp32": lambda: OnnxRuntimeBackend(fp32, device="cpu", threads=threads),
        "onnxruntime int8": lambda: OnnxRuntimeBackend(int8, device="cpu", threads=threads),
        "openvino fp32": lambda: OpenVinoBackend(fp32, threads=threads),
        "openvino bf16": lambda: OpenVinoBackend(fp32, precision="bf16", threads=threads),
        "openvino int8 (NNCF)": lambda: OpenVinoBackend(ov_int8, precision="int8", threads=threads),
    }
    if qdq:
        trt_qdq = quantize_int8(fp32, folder / "model.int8-trt.onnx", calib, target="tensorrt", calib_size=256)
        made["openvino on QDQ (cpu)"] = lambda: OpenVinoBackend(int8, precision="int8", threads=threads)
        made["openvino on QDQ (tensorrt)"] = lambda: OpenVinoBackend(trt_qdq, precision="int8", threads=threads)
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, help="trained checkpoint (default: random nl34-linknet)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024])
    parser.add_argument("--batches", type=int, nargs="+", default=[1])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", nargs="*", default=None, help="engine names containing any of these words")
    parser.add_argument("--qdq", action="store_true", help="also run OpenVINO on the QDQ ONNX flavours")
    args = parser.parse_args()

    ov = import_openvino()
    print(machine_line())
    print(f"# OpenVINO {ov.__version__} on {platform.processor() or platform.machine()}, CPU "
          f"{ov.Core().get_property('CPU', 'FULL_DEVICE_NAME')}, capabilities {cpu_capabilities(ov.Core())}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        export_onnx(model_from(args.checkpoint, "nl34-linknet"), folder / "model.onnx")
        write_synthetic_dataset(folder / "calib", SynthConfig(n=16, size=256, seed=0))
        made = engines(folder, folder / "calib", args.threads, args.qdq)
        if args.only:
            made = {name: make for name, make in made.items()
                    if name == "onnxruntime fp32" or any(word in name for word in args.only)}
        scenes = scene_case(4, 512, seed=1).batch.numpy()
        reference = made["onnxruntime fp32"]().run(scenes)
        shapes = [(batch, size) for size in args.sizes for batch in args.batches]
        print(f"# seconds per call (median of {args.repeats}), {args.threads} threads; ×: onnxruntime fp32 / engine; "
              "IoU: masks vs onnxruntime fp32 on 4 synthetic 512² scenes")
        print(f"{'engine':<28}{'IoU':>7}" + "".join(f"{f'{b}×{s}²':>16}" for b, s in shapes))
        base: dict[tuple[int, int], float] = {}
        for name, make in made.items():
            backend = make()
            iou = road_iou(stacked_mask(backend.run(scenes)), stacked_mask(reference))
            cells = []
            for batch_size, size in shapes:
                batch = np.ascontiguousarray(np.repeat(scene(size).transpose(2, 0, 1)[None], batch_size, 0),
                                             dtype=np.float32)
                seconds = median_run_seconds(backend, batch, args.repeats)
                base.setdefault((batch_size, size), seconds)
                cells.append(f"{seconds:8.3f}s {base[(batch_size, size)] / seconds:5.2f}×")
            print(f"{name:<28}{iou:>7.4f}" + "".join(f"{cell:>16}" for cell in cells), flush=True)
            del backend


if __name__ == "__main__":
    main()
