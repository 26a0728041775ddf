"""Peak memory of `predict` on a large GeoTIFF, against holding the scene as one float tensor.

    python -m benchmarks.geotiff_memory --sizes 2048 8192

For each size, writes a size×size georeferenced RGB GeoTIFF (synthetic roads tiled across it),
runs the pipeline GeoTIFF -> GeoTIFF in a fresh subprocess and reports that process's peak
resident memory (ru_maxrss) before and during prediction. Streaming shows as a peak that does not
grow with the scene (it is one strip of tiles plus one tile's forward pass); for scale the table
also gives what the scene alone would take as one float32 1×3×H×W tensor.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
import torch
from nltool.fileio import atomic_path
from nltool.inference import InferencePipeline, PipelineConfig
from nltool.inference.backends.torch_backend import TorchBackend
from nltool.inference.jobs import PredictJob, predict_file
from nltool.models import build_model

src, dst, arch = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
torch.manual_seed(0)
pipeline = InferencePipeline(TorchBackend(build_model(arch).eval(), device="cpu"), PipelineConfig())
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
result = predict_file(pipeline, PredictJob(src, dst), "tif")
print(json.dumps({"rss_before_kib": before, "rss_peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "seconds": time.perf_counter() - started, "road_fraction": result.road_fraction}))
"""


def write_scene(path: Path, size: int) -> None:
    """A size×size RGB GeoTIFF (UTM 33N, 0.5 m pixels) built from 1024² synthetic scenes, row by row."""
    import rasterio
    from rasterio.crs import CRS
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    from nltool.synthetic import render_scene, scene_rng

    tiles = [render_scene(1024, scene_rng(0, i))[0] for i in range(4)]
    profile = {"driver": "GTiff", "width": size, "height": size, "count": 3, "dtype": "uint8", "tiled": True,
               "blockxsize": 512, "blockysize": 512, "compress": "deflate", "crs": CRS.from_epsg(32633),
               "transform": from_origin(500000, 4500000, 0.5, 0.5)}
    with rasterio.open(path, "w", **profile) as dst:
        for y in range(0, size, 1024):
            row = np.concatenate([tiles[(x // 1024 + y // 1024) % 4] for x in range(0, size, 1024)], axis=1)
            dst.write(np.moveaxis(row[:, :size], -1, 0), window=Window(0, y, size, min(1024, size - y)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2048, 8192], help="scene sides in pixels")
    parser.add_argument("--arch", default="linknet", help="timing-only model (random weights)")
    args = parser.parse_args()
    print(f"# GeoTIFF -> GeoTIFF mask, {args.arch}, tile 1024, overlap 128, tta none, one process per size")
    print(f"{'scene':>11}{'scene as f32 tensor':>21}{'RSS model loaded':>18}{'RSS peak':>10}{'run adds':>10}{'s':>6}")
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            src, dst = Path(tmp) / "scene.tif", Path(tmp) / "scene_mask.tif"
            write_scene(src, size)
            out = subprocess.run([sys.executable, "-c", CHILD, str(src), str(dst), args.arch],
                                 capture_output=True, text=True, check=True)
            stats = json.loads(out.stdout.strip().splitlines()[-1])
        before, peak = stats["rss_before_kib"] / 1024, stats["rss_peak_kib"] / 1024
        tensor = 3 * size * size * 4 / 2**20
        print(f"{size:>5}×{size:<5}{tensor:>17,.0f} MiB{before:>14,.0f} MiB{peak:>6,.0f} MiB{peak - before:>6,.0f} MiB"
              f"{stats['seconds']:>6.0f}")


if __name__ == "__main__":
    main()
