"""``nltool predict``: many images in, one mask file each out, never a half-written file."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nltool.errors import ImageError, OutputExistsError
from nltool.fileio import atomic_path
from nltool.imagery import ImageReader, MaskWriter, OutputFormat, open_image, output_name, probe_format
from nltool.inference.pipeline import InferencePipeline, ProbabilitySink
from nltool.vectors.frame import RasterFrame
from nltool.vectors.io import write_network
from nltool.vectors.settings import DEFAULT_PIXEL_SIZE_M, VectorizeSettings
from nltool.vectors.strips import StripVectorizer

VECTOR_OUTPUTS = ("geojson", "gpkg")


@dataclass(frozen=True)
class PredictJob:
    """One input image and the output file it becomes."""

    input: Path
    output: Path
    vectors: Path | None = None
    """Where the road network goes (``<name>_roads.geojson`` / ``.gpkg``), if asked for."""


@dataclass(frozen=True)
class PredictResult:
    """What one finished job wrote and measured."""

    output: Path
    width: int
    height: int
    road_fraction: float
    seconds: float
    roads: dict[str, Any] | None = None
    """The road network's summary (edges, junctions, total length), when one was written."""


def plan_jobs(inputs: Sequence[Path], out_dir: Path, fmt: OutputFormat, force: bool,
              vectors: str | None = None) -> list[PredictJob]:
    """Check every input and output before any work: missing/empty/non-image inputs, name clashes,
    outputs that exist (unless ``force``), an output folder that cannot be written. ``vectors``
    (``geojson`` or ``gpkg``) adds a road network file beside each mask."""
    if not inputs:
        raise ImageError("no input images given")
    if vectors not in (None, *VECTOR_OUTPUTS):
        raise ImageError(f"--vectors must be one of {', '.join(VECTOR_OUTPUTS)}, got {vectors!r}")
    for path in inputs:
        probe_format(path)
    jobs = jobs_for(inputs, out_dir, fmt, vectors)
    existing = [path for job in jobs for path in (job.output, job.vectors) if path is not None and path.exists()]
    if existing and not force:
        raise existing_outputs_error(existing)
    prepare_out_dir(out_dir)
    return jobs


def jobs_for(inputs: Sequence[Path], out_dir: Path, fmt: OutputFormat, vectors: str | None = None
             ) -> list[PredictJob]:
    """One job per input, writing ``out_dir/<output name>`` (and the road network beside it when
    ``vectors`` is given); two inputs that would write the same output are an error naming both."""
    jobs = [PredictJob(path, out_dir / output_name(path, fmt),
                       None if vectors is None else out_dir / roads_name(path, vectors)) for path in inputs]
    seen: dict[Path, Path] = {}
    for job in jobs:
        if job.output in seen:
            raise ImageError(f"{seen[job.output]} and {job.input} would both write {job.output}; rename one")
        seen[job.output] = job.input
    return jobs


def existing_outputs_error(existing: Sequence[Path]) -> OutputExistsError:
    """The error for outputs that already exist and may not be overwritten without ``--force``."""
    listed = ", ".join(map(str, existing[:3]))
    return OutputExistsError(f"{len(existing)} output file(s) already exist ({listed}"
                             f"{' ...' if len(existing) > 3 else ''}); pass --force to overwrite")


def prepare_out_dir(out_dir: Path) -> None:
    """Create the output folder, or explain why it cannot be written."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ImageError(f"cannot create output folder {out_dir}: {exc}") from exc
    if not os.access(out_dir, os.W_OK):
        raise ImageError(f"output folder {out_dir} is not writable")


class TeeSink:
    """Hands each block of finished rows to several sinks (the mask writer and a road vectorizer)."""

    def __init__(self, *sinks: ProbabilitySink) -> None:
        self.sinks = sinks

    def write_rows(self, y0: int, prob: np.ndarray, valid: np.ndarray | None) -> None:
        for sink in self.sinks:
            sink.write_rows(y0, prob, valid)


def roads_name(input_path: Path, fmt: str) -> str:
    """``<stem>_roads.geojson`` or ``<stem>_roads.gpkg`` (a DeepGlobe ``<id>_sat`` stem becomes ``<id>``)."""
    stem = input_path.stem.removesuffix("_sat") or input_path.stem
    return f"{stem}_roads.{fmt}"


def road_vectorizer(pipeline: InferencePipeline, reader: ImageReader,
                    pixel_size_m: float = DEFAULT_PIXEL_SIZE_M) -> StripVectorizer:
    """A sink that vectorizes the probability rows as they stream, with the pipeline's threshold."""
    frame = RasterFrame.from_georeference(reader.width, reader.height, reader.georef, pixel_size_m)
    return StripVectorizer(frame, VectorizeSettings(threshold=pipeline.config.threshold))


def write_output(pipeline: InferencePipeline, reader: ImageReader, path: Path, fmt: OutputFormat,
                 progress: Callable[[int], None] | None = None, also: ProbabilitySink | None = None) -> MaskWriter:
    """Run ``reader`` through the pipeline into the file ``path`` in format ``fmt`` (and into ``also``);
    the one place predict and the TorchServe handler encode answers, so theirs are byte-identical."""
    writer = MaskWriter(path, fmt, pipeline.config.threshold, reader.height, reader.width, reader.georef)
    try:
        pipeline.run(reader, writer if also is None else TeeSink(writer, also), progress)
    except BaseException:
        writer.discard()
        raise
    writer.close()
    return writer


def predict_file(
    pipeline: InferencePipeline,
    job: PredictJob,
    fmt: OutputFormat,
    *,
    bands: tuple[int, int, int] | None = None,
    on_open: Callable[[int], None] | None = None,
    progress: Callable[[int], None] | None = None,
    pixel_size_m: float = DEFAULT_PIXEL_SIZE_M,
) -> PredictResult:
    """Run one image through the pipeline into a temporary file, then rename it into place (and
    write its road network to ``job.vectors``, vectorized from the same streamed probabilities).

    ``on_open`` gets the image's tile count once it is open (to size a progress bar);
    ``progress`` gets the number of tiles done after each batch.
    """
    started = time.perf_counter()
    roads = None
    with open_image(job.input, max_pixels=pipeline.config.max_pixels, bands=bands) as reader:
        if on_open:
            on_open(pipeline.num_tiles(reader.height, reader.width))
        vectorizer = road_vectorizer(pipeline, reader, pixel_size_m) if job.vectors is not None else None
        with atomic_path(job.output) as tmp:
            writer = write_output(pipeline, reader, tmp, fmt, progress, vectorizer)
            if vectorizer is not None:
                network = vectorizer.finish()
                write_network(network, job.vectors)  # type: ignore[arg-type]
                roads = network.summary()
    return PredictResult(
        output=job.output,
        width=reader.width,
        height=reader.height,
        road_fraction=writer.road_fraction,
        seconds=time.perf_counter() - started,
        roads=roads,
    )
