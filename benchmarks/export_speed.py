"""Images/s at 1024×1024 for PyTorch eager, onnxruntime FP32 and onnxruntime INT8, and INT8's mask IoU.

    python -m benchmarks.export_speed --checkpoint runs/nl34/best.pt

Exports the checkpoint (random NL34 weights if none is given: fine for speed, meaningless for
IoU), quantizes it calibrated on the 16 first scenes of the synthetic training set (seed 0), then
times each backend on the same 1024² scene in one run (median of --repeats after a warm-up) and
prints ratios: onnxruntime FP32 over PyTorch (goal >= 1.5×) and INT8 over FP32 (goal >= 2×), plus
the mask IoU of INT8 against FP32 on the synthetic validation set (16 scenes of 256², seed 1, as
benchmarks/train_synthetic.py makes it; goal >= 0.98 with the checkpoint trained there).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.common import machine_line, median_run_seconds, model_from, scene
from nltool.export.onnx_export import export_onnx
from nltool.export.parity import stacked_mask
from nltool.export.quantize import quantize_int8
from nltool.inference.backends.base import Backend
from nltool.inference.backends.onnxruntime_backend import OnnxRuntimeBackend
from nltool.inference.backends.torch_backend import TorchBackend
from nltool.metrics import road_iou


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, help="trained checkpoint (default: random nl34-linknet)")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--val-size", type=int, default=256, help="side of the synthetic scenes for IoU/calibration")
    args = parser.parse_args()

    model = model_from(args.checkpoint, "nl34-linknet")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for i in range(16):
            Image.fromarray(scene(args.val_size, seed=0, index=i)).save(folder / f"calib{i}_sat.png")
        fp32_path = export_onnx(model, folder / "model.onnx")
        int8_path = quantize_int8(fp32_path, folder / "model.int8.onnx", folder, calib_size=args.val_size)
        backends: dict[str, Backend] = {"pytorch eager": TorchBackend(model, device="cpu"),
                                        "onnxruntime fp32": OnnxRuntimeBackend(fp32_path),
                                        "onnxruntime int8": OnnxRuntimeBackend(int8_path)}
        batch = scene(args.size, seed=1).transpose(2, 0, 1)[None].astype(np.float32)
        rates = {name: 1.0 / median_run_seconds(b, batch, args.repeats) for name, b in backends.items()}
        ious = []
        for i in range(16):
            x = scene(args.val_size, seed=1, index=i).transpose(2, 0, 1)[None].astype(np.float32)
            ious.append(road_iou(stacked_mask(backends["onnxruntime int8"].run(x)),
                                 stacked_mask(backends["onnxruntime fp32"].run(x))))
    print(machine_line())
    print(f"# {model.config.arch} ({'trained: ' + str(args.checkpoint) if args.checkpoint else 'random weights'}), "
          f"1×3×{args.size}×{args.size}, median of {args.repeats}")
    for name, rate in rates.items():
        print(f"{name:<18}{rate:>8.3f} images/s")
    print(f"onnxruntime fp32 / pytorch: {rates['onnxruntime fp32'] / rates['pytorch eager']:.2f}× (goal >= 1.5×)")
    print(f"onnxruntime int8 / fp32:    {rates['onnxruntime int8'] / rates['onnxruntime fp32']:.2f}× (goal >= 2×)")
    print(f"int8 vs fp32 mask IoU on the 16 synthetic validation scenes ({args.val_size}²): mean {np.mean(ious):.4f}, "
          f"min {np.min(ious):.4f} (goal >= 0.98)")


if __name__ == "__main__":
    main()
