"""APLS of networks vectorized from the synthetic generator's ground-truth masks against its true centre lines.

    python -m benchmarks.vector_apls_synthetic --n 16 --size 1024

Renders scenes ``0..n-1`` of seed ``--seed`` exactly as ``nltool data synth`` does, vectorizes each
ground-truth mask (pixel coordinates, ``--pixel-size`` metres per pixel, default settings), builds the
truth network from the roads' centre lines clipped to the image, and prints APLS (and both
directions), the total lengths and the vectorization time per scene, then the mean and the minimum.
APLS is SpaceNet's standard metric (nltool.vectors.apls's default). The goal is APLS >= 0.9: the
vectorizer loses little of a perfect mask's network.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from nltool.synthetic import centre_lines, render_scene_with_roads, scene_rng
from nltool.vectors import RasterFrame, vectorize_array
from nltool.vectors.compare import apls_between
from nltool.vectors.io import RoadLines


def truth_lines(roads: list, size: int, pixel_size: float) -> list[np.ndarray]:
    """The scene's centre lines clipped to the image, in metres."""
    import shapely

    clipped = []
    for line in centre_lines(roads):
        part = shapely.clip_by_rect(shapely.LineString(line), 0, 0, size, size)
        for piece in getattr(part, "geoms", [part]):
            if not piece.is_empty and piece.length > 0:
                clipped.append(np.asarray(piece.coords) * pixel_size)
    return clipped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=16, help="number of scenes")
    parser.add_argument("--size", type=int, default=1024, help="scene side in pixels")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pixel-size", type=float, default=0.5, help="metres per pixel assumed")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    parser.add_argument("--figure", type=Path, help="draw scene 0, its mask and its network into this PNG")
    args = parser.parse_args()

    rows = []
    print(f"# {args.n} synthetic scenes of {args.size}² (seed {args.seed}), {args.pixel_size} m/px")
    print(f"{'scene':>5} {'APLS':>7} {'t->p':>7} {'p->t':>7} {'truth km':>9} {'vector km':>9} {'junctions':>9} "
          f"{'seconds':>8}")
    for index in range(args.n):
        rgb, mask, roads = render_scene_with_roads(args.size, scene_rng(args.seed, index))
        started = time.perf_counter()
        network = vectorize_array(mask > 0, RasterFrame(args.size, args.size, assumed_pixel_size_m=args.pixel_size))
        seconds = time.perf_counter() - started
        truth = truth_lines(roads, args.size, args.pixel_size)
        proposal = [line * args.pixel_size for line in network.map_lines()]
        result = apls_between(RoadLines(truth, None, (1.0, 1.0)), RoadLines(proposal, None, (1.0, 1.0)))
        if args.figure and index == 0:
            from nltool.app.figures import network_figure, save_figure

            title = f"synthetic scene 0 (seed {args.seed}), {args.size} px: APLS {result.apls:.3f} vs true centre lines"
            save_figure(network_figure(rgb, mask, network, title), args.figure)
        truth_km = sum(float(np.linalg.norm(np.diff(line, axis=0), axis=1).sum()) for line in truth) / 1000
        rows.append({"scene": index, **result.to_dict(), "truth_km": truth_km,
                     "vector_km": network.total_length_m / 1000, "junctions": network.junctions, "seconds": seconds})
        print(f"{index:>5} {result.apls:>7.4f} {result.truth_to_proposal:>7.4f} {result.proposal_to_truth:>7.4f} "
              f"{truth_km:>9.3f} {network.total_length_m / 1000:>9.3f} {network.junctions:>9} {seconds:>8.2f}")
    values = [row["apls"] for row in rows]
    print(f"mean APLS {statistics.fmean(values):.4f}, min {min(values):.4f}, "
          f"scenes >= 0.9: {sum(v >= 0.9 for v in values)}/{len(values)}")
    if args.json:
        args.json.write_text(json.dumps({"settings": vars(args), "scenes": rows}, indent=2, default=str))


if __name__ == "__main__":
    main()
