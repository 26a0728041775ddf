"""Resumable batch runs: a JSON record beside each output says which model and options made it.

A rerun skips a scene whose output exists and whose record names the same model file (SHA-256),
pipeline options and input, and whose output is still the file the record describes (size and
modification time); it redoes a scene whose record differs. An existing output without a record
was not written by a resumable run and is refused unless ``--force``, as ``--engine local`` does.
The record is written after its output is in place, and the old record is removed before a scene
is redone, so a crash at any point never leaves a record vouching for the wrong file.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nltool import __version__
from nltool.fileio import file_sha256, write_json
from nltool.inference.config import OutputFormat, PipelineConfig
from nltool.inference.jobs import PredictJob, PredictResult, existing_outputs_error, jobs_for, prepare_out_dir

RECORD_SUFFIX = ".nltool.json"
UNRECORDED_OPTIONS = ("max_pixels",)
"""Pipeline settings that never change a mask (a limit), so changing them redoes nothing."""


def record_path(output: Path) -> Path:
    """Where the record of ``output`` lives: ``<output>.nltool.json`` beside it."""
    return output.with_name(output.name + RECORD_SUFFIX)


@dataclass(frozen=True)
class RunRecord:
    """What decides whether an existing output is up to date: the model file's hash and the options."""

    model_sha256: str
    options: dict[str, Any]

    @classmethod
    def for_run(cls, model: Path, config: PipelineConfig, fmt: OutputFormat, *,
                bands: tuple[int, int, int] | None = None, arch: str | None = None,
                pairwise: str | None = None) -> RunRecord:
        """The record of a run of ``model`` with these settings (hashes the model file once)."""
        options = {k: v for k, v in config.to_dict().items() if k not in UNRECORDED_OPTIONS}
        options.update(format=fmt, bands=list(bands) if bands else None, arch=arch, pairwise=pairwise)
        return cls(file_sha256(model), options)

    def is_current(self, job: PredictJob) -> bool:
        """Whether ``job.output`` exists and its record says this model and these options made it."""
        stored = read_record(job.output)
        if stored is None or not job.output.is_file():
            return False
        stat = job.output.stat()
        return (stored.get("model_sha256") == self.model_sha256 and stored.get("options") == self.options
                and stored.get("input") == str(job.input.resolve())
                and stored.get("output_bytes") == stat.st_size and stored.get("output_mtime_ns") == stat.st_mtime_ns)

    def write(self, job: PredictJob, result: PredictResult, engine: str) -> Path:
        """Record a finished output (call once the output is in place)."""
        stat = job.output.stat()
        return write_json(record_path(job.output), {
            "model_sha256": self.model_sha256, "options": self.options, "input": str(job.input.resolve()),
            "output_bytes": stat.st_size, "output_mtime_ns": stat.st_mtime_ns, "nltool_version": __version__,
            "engine": engine, "width": result.width, "height": result.height,
            "road_fraction": result.road_fraction, "seconds": result.seconds,
        })


def read_record(output: Path) -> dict[str, Any] | None:
    """The record beside ``output``, or None if there is none (or it is unreadable)."""
    try:
        data = json.loads(record_path(output).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@dataclass
class BatchPlan:
    """The scenes a batch run will predict, and those whose outputs are already up to date."""

    todo: list[PredictJob] = field(default_factory=list)
    skipped: list[PredictJob] = field(default_factory=list)


def plan_batch(inputs: Sequence[Path], out_dir: Path, fmt: OutputFormat, record: RunRecord,
               force: bool) -> BatchPlan:
    """Sort the jobs into to-do and up-to-date (see the module docstring); with ``force`` every
    scene is redone. Records of outputs about to be redone are removed first."""
    plan = BatchPlan()
    unrecorded = []
    for job in jobs_for(inputs, out_dir, fmt):
        if not force and record.is_current(job):
            plan.skipped.append(job)
        elif not force and job.output.exists() and read_record(job.output) is None:
            unrecorded.append(job.output)
        else:
            plan.todo.append(job)
    if unrecorded:
        raise existing_outputs_error(unrecorded)
    prepare_out_dir(out_dir)
    for job in plan.todo:
        record_path(job.output).unlink(missing_ok=True)
    return plan
