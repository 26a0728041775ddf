"""Megapixels per second through the whole pipeline, PyTorch vs onnxruntime, TTA none vs d4.

    python benchmarks/inference_throughput.py --size 4096 --tta none d4

For each (backend, TTA) the pipeline runs once over a size×size synthetic scene with 1024 tiles
(overlap 128). Printed: megapixels/s, seconds inside the backend, and the pipeline's own cost
(tiling, TTA transforms, blending, cropping) as a fraction of the backend time; then the ratio
onnxruntime / PyTorch. Everything runs in one process on one machine, so the ratios hold even
when the machine is busy.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from benchmarks.common import machine_line, model_from, scene
from nltool.export.onnx_export import export_onnx
from nltool.inference import InferencePipeline, PipelineConfig
from nltool.inference.backends.base import TimedBackend
from nltool.inference.backends.onnxruntime_backend import OnnxRuntimeBackend
from nltool.inference.backends.torch_backend import TorchBackend


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=4096, help="scene side in pixels")
    parser.add_argument("--tta", nargs="+", default=["none", "d4"], choices=["none", "flip", "d4"])
    parser.add_argument("--tile", type=int, default=1024)
    parser.add_argument("--arch", default="nl34-linknet")
    parser.add_argument("--checkpoint", type=Path, help="a trained checkpoint (default: random weights)")
    args = parser.parse_args()

    model = model_from(args.checkpoint, args.arch)
    rgb = scene(args.size)
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = export_onnx(model, Path(tmp) / "model.onnx")
        backends = {"torch": TorchBackend(model, device="cpu"), "onnxruntime": OnnxRuntimeBackend(onnx_path)}
        print(machine_line())
        print(f"# {args.arch}, scene {args.size}×{args.size}, tile {args.tile}, overlap 128")
        print(f"{'backend':<12}{'tta':<6}{'MP/s':>8}{'total s':>9}{'backend s':>11}{'pipeline/backend':>18}")
        rates: dict[tuple[str, str], float] = {}
        for tta in args.tta:
            for name, backend in backends.items():
                timed = TimedBackend(backend)
                pipeline = InferencePipeline(timed, PipelineConfig(tile=args.tile, tta=tta))  # type: ignore[arg-type]
                started = time.perf_counter()
                pipeline.predict_proba(rgb)
                total = time.perf_counter() - started
                rates[name, tta] = args.size * args.size / 1e6 / total
                overhead = (total - timed.seconds) / timed.seconds
                print(f"{name:<12}{tta:<6}{rates[name, tta]:>8.3f}{total:>9.1f}{timed.seconds:>11.1f}{overhead:>17.1%}")
        for tta in args.tta:
            print(f"onnxruntime / torch, tta {tta}: {rates['onnxruntime', tta] / rates['torch', tta]:.2f}×")


if __name__ == "__main__":
    main()
