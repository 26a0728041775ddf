"""``nltool predict``: many images in, one mask file each out, never a half-written file."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from nltool.errors import ImageError, OutputExistsError
from nltool.fileio import atomic_path
from nltool.imagery import ImageReader, MaskWriter, OutputFormat, open_image, output_name, probe_format
from nltool.inference.pipeline import InferencePipeline


@dataclass(frozen=True)
class PredictJob:
    """One input image and the output file it becomes."""

    input: Path
    output: Path


@dataclass(frozen=True)
class PredictResult:
    """What one finished job wrote and measured."""

    output: Path
    width: int
    height: int
    road_fraction: float
    seconds: float


def plan_jobs(inputs: Sequence[Path], out_dir: Path, fmt: OutputFormat, force: bool) -> list[PredictJob]:
    """Check every input and output before any work: missing/empty/non-image inputs, name clashes,
    outputs that exist (unless ``force``), an output folder that cannot be written."""
    if not inputs:
        raise ImageError("no input images given")
    for path in inputs:
        probe_format(path)
    jobs = jobs_for(inputs, out_dir, fmt)
    existing = [job.output for job in jobs if job.output.exists()]
    if existing and not force:
        raise existing_outputs_error(existing)
    prepare_out_dir(out_dir)
    return jobs


def jobs_for(inputs: Sequence[Path], out_dir: Path, fmt: OutputFormat) -> list[PredictJob]:
    """One job per input, writing ``out_dir/<output name>``; two inputs that would write the same
    output are an error naming both."""
    jobs = [PredictJob(path, out_dir / output_name(path, fmt)) for path in inputs]
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


def write_output(pipeline: InferencePipeline, reader: ImageReader, path: Path, fmt: OutputFormat,
                 progress: Callable[[int], None] | None = None) -> MaskWriter:
    """Run ``reader`` through the pipeline into the file ``path`` in format ``fmt``; the one place
    predict and the TorchServe handler encode answers, so theirs are byte-identical."""
    writer = MaskWriter(path, fmt, pipeline.config.threshold, reader.height, reader.width, reader.georef)
    try:
        pipeline.run(reader, writer, progress)
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
) -> PredictResult:
    """Run one image through the pipeline into a temporary file, then rename it into place.

    ``on_open`` gets the image's tile count once it is open (to size a progress bar);
    ``progress`` gets the number of tiles done after each batch.
    """
    started = time.perf_counter()
    with open_image(job.input, max_pixels=pipeline.config.max_pixels, bands=bands) as reader:
        if on_open:
            on_open(pipeline.num_tiles(reader.height, reader.width))
        with atomic_path(job.output) as tmp:
            writer = write_output(pipeline, reader, tmp, fmt, progress)
    return PredictResult(
        output=job.output,
        width=reader.width,
        height=reader.height,
        road_fraction=writer.road_fraction,
        seconds=time.perf_counter() - started,
    )
