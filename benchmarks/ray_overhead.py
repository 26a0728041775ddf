"""What Ray costs per scene: ``nltool predict --engine local`` vs ``--engine ray`` on this machine.

    python -m benchmarks.ray_overhead --scenes 6 12 --size 256

Writes ``size``² synthetic GeoTIFF scenes (one tile, one strip each), then predicts the first N of
them both ways, for each N given: locally in this process, and on a local Ray (started once,
``--actors`` actors, the same random LinkNet checkpoint). Both sides load the model inside the
timing and run torch with one thread (what a Ray actor with one CPU gets), so the difference is
Ray's: the actor pool's start, the work units, the transfers and the driver's assembly. From two
scene counts the difference splits into a fixed part (the pool's start) and a part per scene.
On 2 cores the point is overhead, not speed-up; every Ray mask is checked byte-identical. The part
per scene can come out below zero: the driver decodes headers and encodes masks while the actor
computes, where the local engine does one after the other.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.common import machine_line, model_from, scene
from nltool.batch.ray_engine import ModelSpec, RayOptions, predict_files_on_ray
from nltool.inference import InferencePipeline, PipelineConfig, load_backend
from nltool.inference.jobs import plan_jobs, predict_file
from nltool.models import save_checkpoint
from nltool.optional import require


def write_scenes(folder: Path, count: int, size: int) -> list[Path]:
    """``count`` synthetic scenes as georeferenced GeoTIFFs."""
    rasterio = require("rasterio", "writing benchmark GeoTIFFs")
    from rasterio.crs import CRS
    from rasterio.transform import from_origin

    folder.mkdir(parents=True)
    paths = []
    for index in range(count):
        rgb = scene(size, index=index)
        path = folder / f"scene_{index:03d}.tif"
        profile = {"driver": "GTiff", "height": size, "width": size, "count": 3, "dtype": "uint8",
                   "crs": CRS.from_epsg(32631), "transform": from_origin(430000 + index * size, 5400000, 0.5, 0.5)}
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(rgb.transpose(2, 0, 1))
        paths.append(path)
    return paths


def run_local(paths: list[Path], out: Path, model: Path, config: PipelineConfig) -> float:
    """Seconds for ``nltool predict --engine local``'s work: load the model, predict every scene."""
    started = time.perf_counter()
    pipeline = InferencePipeline(load_backend(model, device="cpu"), config)
    for job in plan_jobs(paths, out, "tif", force=False):
        predict_file(pipeline, job, "tif")
    return time.perf_counter() - started


def run_ray(paths: list[Path], out: Path, model: Path, config: PipelineConfig, actors: int) -> float:
    """Seconds for ``--engine ray`` (Ray already running): the actor pool's start included."""
    report = predict_files_on_ray(paths, out, ModelSpec(model, "cpu"), config, "tif", RayOptions(actors=actors),
                                  show_progress=False)
    if report.failed or len(report.written) != len(paths):
        raise SystemExit(f"the Ray run failed: {report.failed}")
    return report.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", type=int, nargs=2, default=[6, 12], help="two scene counts")
    parser.add_argument("--size", type=int, default=256, help="scene side (and tile) in pixels")
    parser.add_argument("--actors", type=int, default=1)
    parser.add_argument("--arch", default="linknet")
    args = parser.parse_args()
    ray = require("ray", "the Ray benchmark")
    torch.set_num_threads(1)
    config = PipelineConfig(tile=args.size, overlap=0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = save_checkpoint(root / "model.pt", model_from(None, args.arch))
        paths = write_scenes(root / "scenes", max(args.scenes), args.size)
        started = time.perf_counter()
        ray.init(include_dashboard=False, logging_level="WARNING")
        init_seconds = time.perf_counter() - started
        print(machine_line())
        print(f"# {args.arch}, {args.size}² GeoTIFF scenes (1 tile each), {args.actors} Ray actor(s), "
              f"ray {ray.__version__}; ray.init: {init_seconds:.1f} s (not counted below)")
        print(f"{'scenes':>7}{'local s':>9}{'ray s':>8}{'ray - local':>13}{'per scene':>11}  identical")
        differences = {}
        for count in args.scenes:
            subset = paths[:count]
            local = run_local(subset, root / f"local_{count}", model, config)
            remote = run_ray(subset, root / f"ray_{count}", model, config, args.actors)
            same = all((root / f"ray_{count}" / p.name).read_bytes() == p.read_bytes()
                       for p in (root / f"local_{count}").iterdir())
            differences[count] = remote - local
            print(f"{count:>7}{local:>9.1f}{remote:>8.1f}{remote - local:>13.1f}{(remote - local) / count:>11.2f}"
                  f"  {'yes' if same else 'NO'}")
        (few, many) = args.scenes
        per_scene = (differences[many] - differences[few]) / (many - few)
        print(f"Ray's overhead: {differences[few] - per_scene * few:.1f} s fixed (actor pool start, model load "
              f"on the actors) + {per_scene:.2f} s per scene")
        ray.shutdown()


if __name__ == "__main__":
    main()
