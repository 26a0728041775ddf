"""``nltool predict --engine ray``: the strips of many scenes on a pool of Ray Data actors.

A work unit is one strip of one scene: a grid row of tiles (tile height × scene width), the same
strip the local pipeline reads, read by the actor itself through the scene's reader (rasterio
windows for GeoTIFFs), so a huge scene is spread over many actors and no pixels travel from the
driver. Each actor (:class:`StripPredictor`, ``map_batches`` with an ``ActorPoolStrategy``) loads
the model once, whatever its backend, and returns the strip's weighted tile sum
(:meth:`~nltool.inference.pipeline.InferencePipeline.predict_strip`). The driver blends the strips
of each scene in order with the local pipeline's :class:`~nltool.inference.pipeline.StripBlender`
and writes the scene atomically (:class:`~nltool.batch.assembly.SceneAssembly`), so its masks are
byte-identical to ``--engine local``. A scene that fails (unreadable, corrupt) is reported and the
others go on.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nltool.batch.assembly import SceneAssembly
from nltool.batch.records import BatchPlan, RunRecord, plan_batch
from nltool.batch.report import BatchProgress, BatchReport, SceneFailure
from nltool.errors import ImageError, InferenceConfigError, NltoolError
from nltool.imagery import ImageHeader, ImageReader, open_image, read_header
from nltool.inference.config import OutputFormat, PipelineConfig
from nltool.inference.jobs import PredictJob
from nltool.inference.tiling import TileGrid
from nltool.optional import require

ENGINE = "ray"


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide to run: the cluster address (None starts Ray on this machine; ``auto``
    joins the local cluster; ``ray://host:10001`` a remote one), actors, GPUs per actor."""

    address: str | None = None
    actors: int = 1
    gpus_per_actor: float = 0.0

    def __post_init__(self) -> None:
        if self.actors < 1:
            raise InferenceConfigError(f"--actors must be at least 1, got {self.actors}")
        if self.gpus_per_actor < 0:
            raise InferenceConfigError(f"--gpus-per-actor must be 0 or more, got {self.gpus_per_actor}")


@dataclass(frozen=True)
class ModelSpec:
    """The artifact every actor loads, and how (device ``auto`` is CUDA for actors given GPUs)."""

    artifact: Path
    device: str = "auto"
    arch: str | None = None
    pairwise: str | None = None
    backend: str = "auto"
    precision: str = "auto"

    def device_for(self, gpus_per_actor: float) -> str:
        """The device an actor loads the model on."""
        if self.device != "auto":
            return self.device
        return "cuda" if gpus_per_actor > 0 else "cpu"


class StripPredictor:
    """A Ray Data actor: loads the model once, then predicts strips of scenes it reads itself.

    Each output row carries the strip's weighted tile sum and valid mask as raw bytes (their
    shapes follow from the scene's grid, which the driver knows), or the error that stopped it.
    """

    def __init__(self, model: ModelSpec, device: str, config: PipelineConfig,
                 bands: tuple[int, int, int] | None) -> None:
        from nltool.inference import InferencePipeline, load_backend

        backend = load_backend(model.artifact, device=device, backend=model.backend, precision=model.precision,
                               arch=model.arch, pairwise=model.pairwise)  # type: ignore[arg-type]
        self.pipeline = InferencePipeline(backend, config)
        self.bands = bands
        self._reader: ImageReader | None = None
        self._path: str | None = None

    def _open(self, path: str) -> ImageReader:
        """The scene's reader; the last one stays open, as consecutive strips are often its own."""
        if path != self._path:
            if self._reader is not None:
                self._reader.close()
                self._reader, self._path = None, None
            self._reader = open_image(path, max_pixels=self.pipeline.config.max_pixels, bands=self.bands)
            self._path = path
        return self._reader  # type: ignore[return-value]

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows: dict[str, list[Any]] = {"scene": [], "row": [], "row_sum": [], "valid": [], "error": [], "seconds": []}
        for scene, path, row in zip(batch["scene"], batch["path"], batch["row"], strict=True):
            started = time.perf_counter()
            row_sum, valid, error = b"", b"", ""
            try:
                reader = self._open(str(path))
                grid = self.pipeline.grid(reader.height, reader.width)
                strip, mask = self.pipeline.predict_strip(reader, grid, int(row))
                row_sum = strip.tobytes()
                valid = b"" if mask is None else np.ascontiguousarray(mask, dtype=bool).tobytes()
            except Exception as exc:  # reported per scene; the run goes on with the others
                error = str(exc) if isinstance(exc, NltoolError) else f"{type(exc).__name__}: {exc}"
            for key, value in (("scene", scene), ("row", row), ("row_sum", row_sum), ("valid", valid),
                               ("error", error), ("seconds", time.perf_counter() - started)):
                rows[key].append(value)
        return {key: np.array(values, dtype=object if key in ("row_sum", "valid", "error") else None)
                for key, values in rows.items()}


def _connect(ray: Any, address: str | None) -> bool:
    """Join (or start) Ray unless this process already did; True if this call started it."""
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"logging_level": logging.WARNING}
    if address is None:
        kwargs["include_dashboard"] = False
    ray.init(address=address, **kwargs)
    return True


def _decode(scene: SceneAssembly, out: dict[str, Any]) -> tuple[int, np.ndarray, np.ndarray | None]:
    """An actor's output row -> (grid row, weighted tile sum, valid mask or None)."""
    grid, row = scene.grid, int(out["row"])
    row_sum = np.frombuffer(out["row_sum"], dtype=np.float32).reshape(grid.rows.tile_length, grid.cols.padded_length)
    y = grid.rows.starts[row]
    rows_read = min(y + grid.rows.tile_length, grid.height) - y
    valid = np.frombuffer(out["valid"], dtype=bool).reshape(rows_read, grid.width) if out["valid"] else None
    return row, row_sum, valid


def predict_on_ray(plan: BatchPlan, model: ModelSpec, config: PipelineConfig, fmt: OutputFormat,
                   record: RunRecord, options: RayOptions, *, bands: tuple[int, int, int] | None = None,
                   show_progress: bool = True) -> BatchReport:
    """Predict every scene of ``plan.todo`` on Ray; write each output and its record; report all.

    Scenes are opened on the driver only to read their headers (size, georeferencing): inputs and
    the model must be readable at the same paths on every node (a shared file system).
    """
    ray = require("ray", "batch inference on Ray")
    require("ray.data", "batch inference on Ray")
    started = time.perf_counter()
    report = BatchReport(skipped=list(plan.skipped))
    started_ray = _connect(ray, options.address)
    open_scenes: dict[int, SceneAssembly] = {}
    try:
        with BatchProgress(len(plan.todo), enabled=show_progress) as progress:
            jobs, headers = _read_headers(plan.todo, config, bands, report, progress)
            units = [{"scene": i, "path": str(job.input), "row": row} for i, job in enumerate(jobs)
                     for row in range(len(TileGrid(headers[i].height, headers[i].width, config.tile,
                                                   config.overlap).rows.starts))]
            dead: set[int] = set()

            def fail(index: int, message: str) -> None:
                dead.add(index)
                scene = open_scenes.pop(index, None)
                if scene is not None:
                    scene.abort(message)
                failure = SceneFailure(jobs[index].input, message)
                report.failed.append(failure)
                progress.scene_failed(failure)

            for out in _strips(ray, units, model, config, bands, options):
                index = int(out["scene"])
                if index in dead:
                    continue
                if out["error"]:
                    fail(index, str(out["error"]))
                    continue
                try:
                    scene = open_scenes.get(index)
                    if scene is None:
                        scene = open_scenes[index] = SceneAssembly(jobs[index], headers[index], config, fmt)
                    complete = scene.add(*_decode(scene, out), seconds=float(out["seconds"]))
                    progress.strip_done(scene.job, scene.num_strips)
                    if complete:
                        result = scene.finish()
                        del open_scenes[index]
                        record.write(scene.job, result, ENGINE)
                        report.written.append(result)
                        progress.scene_done(scene.job, result)
                except (NltoolError, OSError) as exc:
                    fail(index, str(exc))
            for index in list(open_scenes):
                fail(index, "the run ended before all of its strips arrived")
    finally:
        for scene in open_scenes.values():  # interrupted: no half-written outputs
            scene.abort("interrupted")
        if started_ray:
            ray.shutdown()
    report.seconds = time.perf_counter() - started
    return report


def _read_headers(todo: list[PredictJob], config: PipelineConfig, bands: tuple[int, int, int] | None,
                  report: BatchReport, progress: BatchProgress) -> tuple[list[PredictJob], list[ImageHeader]]:
    """Headers of the scenes to do; a scene whose header cannot be read fails here."""
    jobs, headers = [], []
    for job in todo:
        try:
            headers.append(read_header(job.input, max_pixels=config.max_pixels, bands=bands))
            jobs.append(job)
        except NltoolError as exc:
            failure = SceneFailure(job.input, str(exc))
            report.failed.append(failure)
            progress.scene_failed(failure)
    return jobs, headers


def _strips(ray: Any, units: list[dict[str, Any]], model: ModelSpec, config: PipelineConfig,
            bands: tuple[int, int, int] | None, options: RayOptions) -> Any:
    """The actors' output rows, as they finish (any order)."""
    if not units:
        return iter(())
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # nltool shows its own progress, per scene
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    dataset = ray.data.from_items(units, override_num_blocks=len(units))
    predicted = dataset.map_batches(
        StripPredictor, batch_size=1, batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=options.actors),
        num_cpus=1, num_gpus=options.gpus_per_actor or None,
        fn_constructor_kwargs={"model": model, "device": model.device_for(options.gpus_per_actor),
                               "config": config, "bands": bands})
    return predicted.iter_rows()


def predict_files_on_ray(inputs: list[Path], out_dir: Path, model: ModelSpec, config: PipelineConfig,
                         fmt: OutputFormat, options: RayOptions, *, bands: tuple[int, int, int] | None = None,
                         force: bool = False, show_progress: bool = True) -> BatchReport:
    """``nltool predict --engine ray``: plan the run (skip scenes already up to date unless
    ``force``), predict the rest on Ray, and report every scene."""
    if not inputs:
        raise ImageError("no input images given")
    record = RunRecord.for_run(model.artifact, config, fmt, bands=bands, arch=model.arch, pairwise=model.pairwise)
    plan = plan_batch(inputs, out_dir, fmt, record, force)
    return predict_on_ray(plan, model, config, fmt, record, options, bands=bands, show_progress=show_progress)
