"""APLS of networks vectorized from city-shaped ground-truth masks against their true centre lines.

    nice -n 10 python -m benchmarks.vector_apls_city --n 10 --size 1536

Generates scenes ``0..n-1`` of seed ``--seed`` with :mod:`benchmarks.city_scenes` (curved street
grids with T-junctions, an arterial or a dual carriageway, a roundabout, cul-de-sacs, slip roads
at shallow angles, roads leaving the image; 0.5 m/pixel, real road widths), vectorizes each
ground-truth mask as ``nltool vectorize`` does (default settings, pixel coordinates), and scores
the network against the centre lines clipped to the image with nltool's APLS (by default SpaceNet's
standard metric, as CosmiQ's reference computes it; ``--variant nltool`` for nltool's own). Prints
APLS, both directions, lengths and junction counts per scene, then the mean and the minimum. The
goal is a mean of at least 0.92.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from benchmarks.city_scenes import PIXEL_SIZE_M, city_scene, truth_lines
from nltool.synthetic import scene_rng
from nltool.vectors import RasterFrame, vectorize_array
from nltool.vectors.apls import AplsSettings, metric_name
from nltool.vectors.compare import apls_between, network_lines
from nltool.vectors.io import RoadLines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10, help="number of scenes")
    parser.add_argument("--size", type=int, default=1536, help="scene side in pixels (0.5 m each)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variant", default=AplsSettings.variant, help="APLS variant (spacenet: the standard)")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    settings = AplsSettings(variant=args.variant)

    rows = []
    print(f"# {args.n} city scenes of {args.size}² (seed {args.seed}), {PIXEL_SIZE_M} m/px; "
          f"{metric_name(args.variant)}")
    print(f"{'scene':>5} {'APLS':>7} {'t->p':>7} {'p->t':>7} {'truth km':>9} {'vector km':>9} {'junctions':>9} "
          f"{'vec s':>6} {'APLS s':>6}")
    for index in range(args.n):
        mask, roads = city_scene(args.size, scene_rng(args.seed, index))
        started = time.perf_counter()
        network = vectorize_array(mask, RasterFrame(args.size, args.size, assumed_pixel_size_m=PIXEL_SIZE_M))
        seconds = time.perf_counter() - started
        truth = truth_lines(roads, args.size)
        started = time.perf_counter()
        result = apls_between(RoadLines(truth, None, (PIXEL_SIZE_M, PIXEL_SIZE_M)),
                              network_lines(network), settings)
        apls_seconds = time.perf_counter() - started
        truth_km = sum(float(np.hypot(*np.diff(line, axis=0).T).sum()) for line in truth) * PIXEL_SIZE_M / 1000
        rows.append({"scene": index, **result.to_dict(), "truth_km": truth_km,
                     "vector_km": network.total_length_m / 1000, "junctions": network.junctions, "seconds": seconds,
                     "apls_seconds": apls_seconds})
        print(f"{index:>5} {result.apls:>7.4f} {result.truth_to_proposal:>7.4f} {result.proposal_to_truth:>7.4f} "
              f"{truth_km:>9.3f} {network.total_length_m / 1000:>9.3f} {network.junctions:>9} {seconds:>6.2f} "
              f"{apls_seconds:>6.2f}",
              flush=True)
    values = [row["apls"] for row in rows]
    print(f"mean APLS {statistics.fmean(values):.4f}, min {min(values):.4f}, "
          f"scenes >= 0.92: {sum(v >= 0.92 for v in values)}/{len(values)}")
    if args.json:
        args.json.write_text(json.dumps({"settings": vars(args), "scenes": rows}, indent=2, default=str))


if __name__ == "__main__":
    main()
