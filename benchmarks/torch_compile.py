"""The torch backend's options on NL34, in one run: eager vs ``torch.compile``, fp32 vs bf16 autocast,
NCHW vs channels_last; and what compiling costs in a fresh process, cold and with the disk cache warm.

    python benchmarks/torch_compile.py speed --size 1024 --batch 1 --batch 8
    python benchmarks/torch_compile.py compile-time --size 1024 --precision fp32 --precision bf16

``speed`` prints seconds per tile (batch 8 is the D4 transforms of one tile, as TTA sends them), the
ratio to eager fp32, and the mask IoU against eager fp32 on the same synthetic road scene. The model
is a seeded random NL34 whose last conv is rescaled so its masks hold road and background with
confident probabilities (a random head gives near-0.5 or one-class masks, where any rounding flips
them or none can).
``compile-time`` runs each precision twice in child processes sharing a fresh cache folder: the first
pays the whole compile, the second shows what the inductor cache saves.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import confident_head, machine_line, scene
from nltool.inference.backends.torch_backend import TorchBackend, compile_model
from nltool.inference.tta import TRANSFORMS
from nltool.metrics import road_iou
from nltool.models import NLLinkNet, build_model, load_checkpoint

ARCH = "nl34-linknet"


@dataclass(frozen=True)
class Variant:
    """One way to run the torch backend."""

    precision: str
    compile: bool
    channels_last: bool

    @property
    def label(self) -> str:
        """e.g. ``compiled bf16 NHWC``."""
        return f"{'compiled' if self.compile else 'eager'} {self.precision} {'NHWC' if self.channels_last else 'NCHW'}"


VARIANTS = [Variant(p, c, cl) for c in (False, True) for p in ("fp32", "bf16") for cl in (False, True)]


def bench_model(checkpoint: Path | None) -> NLLinkNet:
    """The checkpoint's model, else a seeded random NL34 whose head is rescaled (:func:`confident_head`,
    on a scene other than the measured one): both classes present, probabilities away from 0.5."""
    if checkpoint is not None:
        return load_checkpoint(checkpoint).model
    torch.manual_seed(0)
    return confident_head(build_model(ARCH).eval(), scene(256, seed=1))


def tile_batch(size: int, batch: int) -> np.ndarray:
    """A synthetic scene as a float32 N×3×size×size batch: itself (N=1) or its first N D4 transforms."""
    tile = scene(size).transpose(2, 0, 1).astype(np.float32)[None]
    return np.concatenate([t.apply(tile) for t in TRANSFORMS["d4"][:batch]]) if batch > 1 else tile


def timed_run(backend: TorchBackend, x: np.ndarray) -> float:
    """Seconds of one ``backend.run``."""
    started = time.perf_counter()
    backend.run(x)
    return time.perf_counter() - started


def speed(args: argparse.Namespace) -> None:
    """Seconds per tile, ratio and mask IoU vs eager fp32 for each variant and batch size. All
    variants are built and warmed (compiled) first, then timed round-robin, so a change in the
    shared machine's load hits every variant alike."""
    wanted = [v for v in VARIANTS if not args.only or any(o in v.label for o in args.only)]
    variants = [Variant("fp32", False, False), *[v for v in wanted if v != Variant("fp32", False, False)]]
    model = args.checkpoint or f"{ARCH} (seeded, confident head)"
    print(machine_line())
    print(f"# {model}, tile {args.size}², median of {args.repeats} round-robin rounds after a warm-up call")
    print(f"{'variant':<22}{'batch':>6}{'s/tile':>9}{'× eager fp32':>14}{'mask IoU':>10}")
    for batch in args.batch:
        x = tile_batch(args.size, batch)
        backends, masks = [], []
        for variant in variants:
            backend = TorchBackend(bench_model(args.checkpoint), device="cpu", precision=variant.precision,  # type: ignore[arg-type]
                                   compile=variant.compile, channels_last=variant.channels_last)
            out = backend.run(x)
            backends.append(backend)
            masks.append((out > 0.5).reshape(-1, out.shape[-1]))  # the batch's masks stacked: one pooled IoU
        times: list[list[float]] = [[] for _ in variants]
        for _ in range(args.repeats):
            for backend, column in zip(backends, times, strict=True):
                column.append(timed_run(backend, x) / batch)
        seconds = [float(np.median(column)) for column in times]
        for variant, s, mask in zip(variants, seconds, masks, strict=True):
            print(f"{variant.label:<22}{batch:>6}{s:>9.3f}{seconds[0] / s:>14.2f}{road_iou(mask, masks[0]):>10.4f}")


def first_call(args: argparse.Namespace) -> None:
    """(child) Seconds of the first and next call at batch 1, then of the first and next call at
    batch 2 (the second shape: a recompile, automatic-dynamic or static per ``--dynamic``)."""
    precision = args.precision[0]
    backend = TorchBackend(bench_model(args.checkpoint), device="cpu", precision=precision,
                           compile=args.dynamic == "auto")
    if args.dynamic == "static":
        backend.net = compile_model(backend.net, dynamic=False)
    one, two = tile_batch(args.size, 1), tile_batch(args.size, 2)
    print(" ".join(f"{timed_run(backend, x):.2f}" for x in (one, one, two, two)))


def compile_time(args: argparse.Namespace) -> None:
    """Cold then warm first-call seconds per precision, each in a fresh process on one fresh cache;
    then, warm, what a second input shape costs with ``dynamic=False`` instead."""
    print(machine_line())
    print(f"# {ARCH} compiled, tile {args.size}², each row a fresh process; seconds per call "
          "(batch 1 first/next, then batch 2 first/next)")
    print(f"{'precision':<10}{'cache':>6}{'dynamic':>8}{'b1 first':>10}{'b1 next':>9}{'b2 first':>10}{'b2 next':>9}")
    for precision in args.precision:
        with tempfile.TemporaryDirectory() as cache:
            env = {**os.environ, "NLTOOL_CACHE_DIR": cache}
            env.pop("TORCHINDUCTOR_CACHE_DIR", None)
            runs = [("cold", "auto"), ("warm", "auto")] + ([("warm", "static")] if precision == "fp32" else [])
            for state, dynamic in runs:
                model = ["--checkpoint", str(args.checkpoint)] if args.checkpoint else []
                out = subprocess.run([sys.executable, "-m", "benchmarks.torch_compile", "first-call", *model,
                                      "--size", str(args.size), "--precision", precision, "--dynamic", dynamic],
                                     env=env, check=True, capture_output=True, text=True).stdout.split()
                cells = "".join(f"{float(v):>{w}.2f}" for v, w in zip(out, (10, 9, 10, 9), strict=True))
                print(f"{precision:<10}{state:>6}{dynamic:>8}{cells}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=("speed", "compile-time", "first-call"))
    parser.add_argument("--size", type=int, default=1024, help="tile side in pixels (multiple of 32)")
    parser.add_argument("--batch", type=int, action="append", help="tiles per call (repeatable; default 1)")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds (median reported)")
    parser.add_argument("--only", action="append", help="run only variants whose label contains this")
    parser.add_argument("--precision", action="append", help="compile-time: precisions (default fp32, bf16)")
    parser.add_argument("--dynamic", choices=("auto", "static"), default="auto",
                        help="first-call: nltool's dynamic choice, or dynamic=False")
    parser.add_argument("--checkpoint", type=Path, help="an NL34 checkpoint (default: seeded random, confident head)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    args = parser.parse_args()
    args.batch = args.batch or [1]
    args.precision = args.precision or ["fp32", "bf16"]
    torch.set_num_threads(args.threads)
    {"speed": speed, "compile-time": compile_time, "first-call": first_call}[args.mode](args)


if __name__ == "__main__":
    main()
