"""Peak memory of `nltool vectorize` on large probability GeoTIFFs: strip-wise against whole-image.

    python -m benchmarks.vector_memory --sizes 2048x2048 2048x8192 8192x8192 [--whole]

For each WIDTHxHEIGHT, writes a georeferenced 8-bit probability GeoTIFF (UTM 33N, 0.5 m pixels)
tiled from blurred 1024² synthetic road masks, then in a fresh subprocess vectorizes it the way
`nltool vectorize prob.tif --out roads.geojson` does (the raster read by strips, the network
written as GeoJSON) and reports the resident memory once started (the imports and numba's one-off
compile of the skeleton tracer done on a small raster) and the peak during the run (Linux: VmHWM,
reset after start-up through /proc/self/clear_refs). Strip-wise vectorization holds one strip of
rows (1024 plus 40 m of context above and below) at a time, so its peak should grow with the
width but not the height; `--whole` also runs each raster as one strip for comparison.
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
import json, sys, time
from pathlib import Path
from nltool.vectors import VectorizeSettings, vectorize_file
from nltool.vectors.io import write_network

def status(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])

src, dst, strip_rows, warm = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
# the same steps on a small raster first: imports (rasterio, pyproj), numba's compile of sknw's tracer
write_network(vectorize_file(warm, VectorizeSettings(strip_rows=strip_rows)), warm.with_suffix(".geojson"))
Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
before = status("VmRSS")
started = time.perf_counter()
network = vectorize_file(src, VectorizeSettings(strip_rows=strip_rows))
write_network(network, dst)
print(json.dumps({"rss_before_kib": before, "rss_peak_kib": status("VmHWM"), "seconds": time.perf_counter() - started,
                  **network.summary()}))
"""


def write_probability(path: Path, width: int, height: int) -> None:
    """A width×height 8-bit probability GeoTIFF from 1024² synthetic masks (Gaussian-blurred, σ 2 px), row by row."""
    import rasterio
    from rasterio.crs import CRS
    from rasterio.transform import from_origin
    from rasterio.windows import Window
    from scipy.ndimage import gaussian_filter

    from nltool.synthetic import render_scene, scene_rng

    tiles = [np.rint(gaussian_filter(render_scene(1024, scene_rng(0, i), occluders=False)[1].astype(np.float32), 2.0))
             .astype(np.uint8) for i in range(4)]
    profile = {"driver": "GTiff", "width": width, "height": height, "count": 1, "dtype": "uint8", "tiled": True,
               "blockxsize": 512, "blockysize": 512, "compress": "deflate", "crs": CRS.from_epsg(32633),
               "transform": from_origin(500000, 4500000, 0.5, 0.5)}
    with rasterio.open(path, "w", **profile) as dst:
        for y in range(0, height, 1024):
            row = np.concatenate([tiles[(x // 1024 + y // 1024) % 4] for x in range(0, width, 1024)], axis=1)
            rows = min(1024, height - y)
            dst.write(row[None, :rows, :width], window=Window(0, y, width, rows))


def measure(src: Path, dst: Path, strip_rows: int, warm: Path) -> dict:
    """Vectorize ``src`` in a fresh process (after ``warm``); its memory and network summary."""
    out = subprocess.run([sys.executable, "-c", CHILD, str(src), str(dst), str(strip_rows), str(warm)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["2048x2048", "2048x8192", "8192x8192"],
                        help="rasters as WIDTHxHEIGHT pixels")
    parser.add_argument("--whole", action="store_true", help="also vectorize each raster as one strip")
    args = parser.parse_args()
    print("# probability GeoTIFF -> road network GeoJSON (nltool vectorize), strips of 1024 rows + 40 m context, "
          "one process per run")
    print(f"{'raster':>11} {'mode':>6} {'map as f32':>11} {'RSS start':>10} {'RSS peak':>9} {'run adds':>9} "
          f"{'s':>5} {'lines':>6} {'km':>6}")
    for spec in args.sizes:
        width, height = (int(v) for v in spec.lower().split("x"))
        with tempfile.TemporaryDirectory() as tmp:
            src, warm = Path(tmp) / "prob.tif", Path(tmp) / "warm.tif"
            write_probability(src, width, height)
            write_probability(warm, 256, 256)
            for mode, rows in (("strips", 1024), ("whole", height))[:2 if args.whole else 1]:
                stats = measure(src, Path(tmp) / f"roads_{mode}.geojson", rows, warm)
                before, peak = stats["rss_before_kib"] / 1024, stats["rss_peak_kib"] / 1024
                print(f"{width:>5}×{height:<5} {mode:>6} {width * height * 4 / 2**20:>7,.0f} MiB {before:>6,.0f} MiB "
                      f"{peak:>5,.0f} MiB {peak - before:>5,.0f} MiB {stats['seconds']:>5.0f} {stats['edges']:>6} "
                      f"{stats['total_length_m'] / 1000:>6.1f}", flush=True)


if __name__ == "__main__":
    main()
