"""Forward latency of every arch relative to the LinkNet34 baseline, in one run on this machine.

    python benchmarks/model_forward.py --size 1024 --repeats 3

Prints a table: median seconds per image and the ratio to `linknet`, so the cost of the non-local
blocks (and of D-LinkNet's dilated centre) reads off directly despite a noisy machine.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from nltool.models import build_model, count_parameters, list_archs


def median_forward_seconds(model: torch.nn.Module, size: int, repeats: int) -> float:
    """Median wall time of one eval-mode forward pass on a 1×3×size×size input (after a warm-up)."""
    model.eval()
    x = torch.randn(1, 3, size, size)
    times = []
    with torch.inference_mode():
        model(x)
        for _ in range(repeats):
            started = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1024, help="input side in pixels (multiple of 32)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per arch (median reported)")
    parser.add_argument("--pairwise", default="embedded_gaussian", help="pairwise function of the NL archs")
    args = parser.parse_args()

    print(f"# {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}, input 1×3×{args.size}×{args.size}, median of {args.repeats}")
    print(f"{'arch':<14}{'params':>10}{'s/image':>10}{'× linknet':>11}")
    baseline = None
    for arch in list_archs():
        model = build_model(arch, pairwise=args.pairwise)  # type: ignore[arg-type]
        seconds = median_forward_seconds(model, args.size, args.repeats)
        baseline = baseline or seconds  # list_archs() yields the baseline first
        params = count_parameters(model) / 1e6
        print(f"{arch:<14}{params:>9.3f}M{seconds:>10.3f}{seconds / baseline:>11.2f}")


if __name__ == "__main__":
    main()
