"""Every CPU engine on the same weights, timed as a user runs it: whole process and in-process.

    python -m benchmarks.cpu_engines --checkpoint CKPT --calib DIR --scenes DIR [--sizes 1024 2048]
        [--d4-sizes 1024] [--work DIR]

Exports the checkpoint once (FP32 ONNX, INT8 calibrated on ``--calib``, and OpenVINO's
accuracy-controlled INT8 IR where nncf is installed; a row whose export fails its gate is skipped
with the export's message), builds one image per
size as a mosaic of the held-out scenes in ``--scenes`` (the model's own kind of imagery, so the
masks compared have roads in them), then runs ``nltool predict`` for each engine (torch eager and
compiled, fp32 and bf16; onnxruntime FP32 and INT8; OpenVINO FP32, bf16 and INT8 where installed;
``--engines`` picks some), with and without D4 (D4 only at ``--d4-sizes`` when given: the goals need
it at the smallest size only), in a fresh process each, and the authors' D4
inference (``benchmarks.authors_d4``) at the
smallest size. Compiled engines run once untimed first (the compile cache makes later processes
fast). Whole process = wall clock of the command; in-process = the seconds ``predict`` reports
for the image (read, tiles, model, write); start-up = the difference (imports, model load). Mask
IoU is against onnxruntime FP32 with the same TTA. Prints markdown tables and the goals' ratios.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from nltool.metrics import road_iou
from nltool.optional import EXTRAS, available


@dataclass(frozen=True)
class Engine:
    """One row: a label, the model file (``onnx``, ``int8``, ``checkpoint`` or another export) and options."""

    label: str
    model: str
    backend: str
    precision: str = "auto"
    needs: str | None = None
    compile: bool = False


ENGINES = (
    Engine("torch eager fp32", "checkpoint", "torch", "fp32"),
    Engine("torch eager bf16", "checkpoint", "torch", "bf16"),
    Engine("torch compiled fp32", "checkpoint", "torch", "fp32", compile=True),
    Engine("torch compiled bf16", "checkpoint", "torch", "bf16", compile=True),
    Engine("onnxruntime fp32", "onnx", "onnxruntime"),
    Engine("onnxruntime int8", "int8", "onnxruntime"),
    Engine("openvino fp32", "onnx", "openvino", needs="openvino"),
    Engine("openvino bf16", "onnx", "openvino", "bf16", needs="openvino"),
    Engine("openvino int8", "openvino-int8", "openvino", needs="nncf"),
)
REFERENCE = "onnxruntime fp32"
SECONDS = re.compile(r", (\d+(?:\.\d+)?)s\)")


@dataclass
class Run:
    """One measured command."""

    whole: float
    inside: float
    mask: Path


def nltool(*args: str) -> list[str]:
    """The ``nltool`` command of this Python."""
    return [sys.executable, "-m", "nltool", *args]


def timed(command: list[str]) -> tuple[float, str]:
    """(wall seconds, stdout+stderr) of ``command``; a failure stops the benchmark with its output."""
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(command)}\n{done.stdout}{done.stderr}")
    return seconds, done.stdout + done.stderr


def export(checkpoint: Path, calib: Path, folder: Path, openvino_int8: bool) -> dict[str, Path]:
    """model.onnx and model.int8.onnx of ``checkpoint``, and with ``openvino_int8`` the accuracy-controlled
    OpenVINO IR (reused when already there; left out, with the export's message, when it fails its gate)."""
    files = {"checkpoint": checkpoint, "onnx": folder / "model.onnx", "int8": folder / "model.int8.onnx"}
    if not files["int8"].exists():
        seconds, _ = timed(nltool("export", "--checkpoint", str(checkpoint), "--out", str(folder), "--int8",
                                  "--calib", str(calib), "--force"))
        print(f"# export (onnx + int8): {seconds:.0f} s")
    ir = folder / "openvino" / "model.int8.xml"
    if openvino_int8 and not ir.exists():
        started = time.perf_counter()
        done = subprocess.run(nltool("export", "--checkpoint", str(checkpoint), "--out", str(ir.parent), "--int8",
                                     "--calib", str(calib), "--int8-engine", "openvino", "--force"),
                              capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - started
        print(f"# export (openvino int8, accuracy control): {seconds:.0f} s, exit {done.returncode}")
        if done.returncode != 0:
            print("# " + (done.stdout + done.stderr).strip().splitlines()[-1])
    if ir.exists():
        files["openvino-int8"] = ir
    return files


def predict(engine: Engine, model: Path, image: Path, tta: str, out: Path) -> Run:
    """``nltool predict`` of one image with one engine, in a fresh process."""
    out.mkdir(parents=True, exist_ok=True)
    command = nltool("predict", str(image), "--model", str(model), "--out", str(out), "--tta", tta, "--backend",
                     engine.backend, "--precision", engine.precision, "--force",
                     *(["--compile"] if engine.compile else []))
    if engine.compile:  # the first run per tile shape compiles; users pay that once (the cache), so time the second
        cold, _ = timed(command)
        print(f"# {engine.label} {image.name} tta {tta}: first run (compiles or loads the cache) {cold:.1f} s")
    whole, text = timed(command)
    match = SECONDS.search(text)
    if match is None:
        sys.exit(f"no time in the output of {' '.join(command)}:\n{text}")
    return Run(whole, float(match.group(1)), out / f"{image.stem}_mask.png")


def mosaic(scenes: Path, size: int) -> np.ndarray:
    """A size×size RGB image tiled from the ``*_sat.*`` images of ``scenes`` in name order (cycled)."""
    paths = sorted(p for p in scenes.iterdir() if "_sat" in p.stem)
    if not paths:
        sys.exit(f"no *_sat images in {scenes}")
    first = np.asarray(Image.open(paths[0]).convert("RGB"))
    side = first.shape[0]
    count = -(-size // side)
    rows = []
    for r in range(count):
        row = [np.asarray(Image.open(paths[(r * count + c) % len(paths)]).convert("RGB"))[:side, :side]
               for c in range(count)]
        rows.append(np.concatenate(row, axis=1))
    return np.concatenate(rows, axis=0)[:size, :size]


def mask_of(path: Path) -> np.ndarray:
    """A mask PNG as booleans."""
    return np.asarray(Image.open(path)) > 127


def usable(engine: Engine) -> str | None:
    """Why ``engine`` cannot run here, or None."""
    from nltool.inference.selection import cpu_has_native_bf16

    if engine.needs in ("openvino", "nncf") and not available(engine.needs):
        return f"{engine.needs} is not installed (pip install 'nltool[{EXTRAS[engine.needs]}]')"
    if engine.precision == "bf16" and not cpu_has_native_bf16():
        return "this CPU has no native bf16"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True, help="a trained nltool checkpoint")
    parser.add_argument("--calib", type=Path, required=True, help="calibration images for the INT8 export")
    parser.add_argument("--scenes", type=Path, required=True, help="held-out scenes (*_sat images) to tile")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048])
    parser.add_argument("--tta", nargs="+", default=["none", "d4"])
    parser.add_argument("--d4-sizes", type=int, nargs="+", default=None,
                        help="run D4 only at these sizes (default: every size); the smallest size needs it")
    parser.add_argument("--work", type=Path, default=None, help="keep exports and outputs here (default: temporary)")
    parser.add_argument("--engines", nargs="+", default=None, help="only these engine labels (onnxruntime fp32, the "
                        "reference, is always run)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="nltool-engines-"))
    work.mkdir(parents=True, exist_ok=True)
    wanted = [e for e in ENGINES if args.engines is None or e.label in args.engines or e.label == REFERENCE]
    files = export(args.checkpoint, args.calib, work / "export", any(e.needs == "nncf" for e in wanted))
    images = {}
    for size in args.sizes:
        images[size] = work / f"scene{size}.png"
        Image.fromarray(mosaic(args.scenes, size)).save(images[size])
    engines = [e for e in wanted if usable(e) is None and e.model in files]
    for skipped in (e for e in wanted if e not in engines):
        print(f"# skipped {skipped.label}: {usable(skipped) or 'its export failed (above)'}")
    runs: dict[tuple[str, int, str], Run] = {}
    d4_sizes = set(args.sizes if args.d4_sizes is None else args.d4_sizes)
    smallest = min(args.sizes)
    if "d4" not in args.tta or smallest not in d4_sizes:
        sys.exit(f"the authors' D4 comparison needs --tta d4 at the smallest size ({smallest})")
    for size in args.sizes:
        for tta in (t for t in args.tta if t != "d4" or size in d4_sizes):
            for engine in engines:
                run = predict(engine, files[engine.model], images[size], tta,
                              work / "out" / f"{engine.label.replace(' ', '-')}-{size}-{tta}")
                runs[engine.label, size, tta] = run
                print(f"# {engine.label} {size}² tta {tta}: whole {run.whole:.2f} s, in-process {run.inside:.2f} s",
                      flush=True)
    authors_mask = work / "authors" / "mask.png"
    authors_mask.parent.mkdir(exist_ok=True)
    whole, text = timed([sys.executable, "-m", "benchmarks.authors_d4", str(args.checkpoint), str(images[smallest]),
                         str(authors_mask)])
    authors = Run(whole, float(text.split("inference")[1].split()[0]), authors_mask)

    print(f"\n| engine | size | TTA | whole process s | in-process s | start-up s | mask IoU vs {REFERENCE} |")
    print("|---|---|---|---|---|---|---|")
    for (label, size, tta), run in runs.items():
        iou = road_iou(mask_of(run.mask), mask_of(runs[REFERENCE, size, tta].mask))
        print(f"| {label} | {size}² | {tta} | {run.whole:.2f} | {run.inside:.2f} | {run.whole - run.inside:.2f} | "
              f"{iou:.4f} |")
    reference_d4 = runs.get((REFERENCE, smallest, "d4"))
    print(f"| authors' D4 (8 eager passes) | {smallest}² | d4 | {authors.whole:.2f} | {authors.inside:.2f} | "
          f"{authors.whole - authors.inside:.2f} | "
          f"{road_iou(mask_of(authors.mask), mask_of(reference_d4.mask)) if reference_d4 else float('nan'):.4f} |")

    print("\n## ratios (whole process)")
    for (label, size, tta), run in runs.items():
        if tta == "d4" and size == smallest:
            print(f"- authors' D4 / {label} d4 at {size}²: {authors.whole / run.whole:.2f}×")
    largest = max(args.sizes)
    for label in ("onnxruntime int8", "openvino int8"):
        if (label, largest, "none") in runs:
            fp32, int8 = runs[REFERENCE, largest, "none"], runs[label, largest, "none"]
            print(f"- {label} vs onnxruntime fp32 at {largest}², tta none: whole {fp32.whole / int8.whole:.2f}×, "
                  f"in-process {fp32.inside / int8.inside:.2f}×")
    print(f"\n# work folder: {work}")


if __name__ == "__main__":
    main()
