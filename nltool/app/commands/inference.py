"""``nltool predict`` (masks, locally or on Ray), ``nltool vectorize`` (road networks) and ``nltool apls``."""

from __future__ import annotations

from enum import Enum
from functools import partial
from pathlib import Path
from typing import Annotated, Any, cast

import typer

from nltool.app.commands.options import (
    AUTO_BACKEND,
    AUTO_PRECISION,
    DEFAULT_FORMAT,
    DEFAULT_SCALES,
    DEFAULT_TTA,
    DEFAULTS,
    Arch,
    ArchOpt,
    BackendOpt,
    BackendOption,
    BatchOpt,
    CompileOpt,
    DeviceOpt,
    FormatOpt,
    MaxPixelsOpt,
    ModelOpt,
    OverlapOpt,
    PairwiseOpt,
    PairwiseOption,
    PixelSizeOpt,
    PrecisionOpt,
    PrecisionOption,
    ScalesOpt,
    ThresholdOpt,
    TileOpt,
    TTAOption,
    VectorsOpt,
    open_pipeline,
    parse_numbers,
    pipeline_config,
)
from nltool.devices import AUTO_DEVICE
from nltool.inference.config import OutputFormat, PipelineConfig
from nltool.progress import progress_bar
from nltool.vectors.settings import DEFAULT_PIXEL_SIZE_M, AplsSettings, VectorizeSettings

VECTORIZE = VectorizeSettings()
"""Defaults of the vectorize (and apls) options."""
APLS = AplsSettings()
"""Defaults of the apls options."""


class EngineOpt(str, Enum):
    """Where ``nltool predict`` runs."""

    local = "local"
    ray = "ray"


def predict(
    inputs: Annotated[list[Path], typer.Argument(help="Images (PNG, JPEG, TIFF or GeoTIFF, any size), folders of "
                                                      "them, quoted glob patterns, or manifests (.txt: one path a "
                                                      "line).")],
    model: ModelOpt,
    out: Annotated[Path, typer.Option(help="Folder for the outputs (<name>_mask.png/.tif, <name>_prob.png).")],
    tile: TileOpt = DEFAULTS.tile,
    overlap: OverlapOpt = DEFAULTS.overlap,
    tta: TTAOption = DEFAULT_TTA,
    scales: ScalesOpt = DEFAULT_SCALES,
    threshold: ThresholdOpt = DEFAULTS.threshold,
    output_format: Annotated[FormatOpt, typer.Option("--format", help="png: mask 255/0; tif: mask as "
                             "GeoTIFF (georeferencing kept); prob: probability as 8-bit PNG.")] = DEFAULT_FORMAT,
    batch_size: BatchOpt = DEFAULTS.batch_size,
    bands: Annotated[str | None, typer.Option(help="RGB bands of a multi-band raster, 1-based, e.g. '3,2,1'.")] = None,
    max_pixels: MaxPixelsOpt = DEFAULTS.max_pixels,
    device: DeviceOpt = AUTO_DEVICE,
    backend: BackendOption = AUTO_BACKEND,
    precision: PrecisionOption = AUTO_PRECISION,
    compile_model: CompileOpt = False,
    arch: ArchOpt = None,
    pairwise: PairwiseOption = None,
    force: Annotated[bool, typer.Option(help="Overwrite outputs that already exist (--engine ray: also redo "
                                             "scenes whose outputs are up to date).")] = False,
    vectors: Annotated[VectorsOpt | None, typer.Option(help="Also write the road network beside each mask: "
                       "<name>_roads.geojson (WGS 84) or .gpkg (the image's CRS).")] = None,
    pixel_size: PixelSizeOpt = DEFAULT_PIXEL_SIZE_M,
    engine: Annotated[EngineOpt, typer.Option(help="local: scene after scene in this process; ray: the strips of "
                                                   "all scenes on Ray actors (the [ray] extra), resumable, a failed "
                                                   "scene does not stop the others; exit status = scenes "
                                                   "failed.")] = EngineOpt.local,
    address: Annotated[str | None, typer.Option(help="--engine ray: 'auto' (the running cluster) or "
                                                        "ray://HOST:10001; default: start Ray here.")] = None,
    actors: Annotated[int, typer.Option(help="--engine ray: actors, each loading the model once.")] = 1,
    gpus_per_actor: Annotated[float, typer.Option(help="--engine ray: GPUs per actor (0.5: two share a "
                                                       "GPU).")] = 0.0,
) -> None:
    """Write a road mask for each input image (tiled, with optional test-time augmentation)."""
    from nltool.batch.inputs import expand_inputs

    band_tuple = parse_numbers(bands, int, "--bands") if bands else None
    fmt = cast(OutputFormat, output_format.value)
    inputs = expand_inputs(inputs, exclude=out)
    if engine is EngineOpt.ray:
        if vectors is not None:
            raise typer.BadParameter("road networks are written by --engine local only", param_hint="--vectors")
        if compile_model:
            raise typer.BadParameter("--engine ray runs eager models only", param_hint="--compile")
        _predict_on_ray(inputs, out, model, fmt, band_tuple, force, device, backend, precision, arch, pairwise,
                        address, actors, gpus_per_actor,
                        pipeline_config(tile=tile, overlap=overlap, tta=tta, scales=scales, threshold=threshold,
                                        batch_size=batch_size, max_pixels=max_pixels))
        return
    from nltool.inference.jobs import plan_jobs, predict_file

    jobs = plan_jobs(inputs, out, fmt, force, vectors.value if vectors else None)
    pipeline = open_pipeline(model, device, arch, pairwise, tile=tile, overlap=overlap, tta=tta, scales=scales,
                             threshold=threshold, batch_size=batch_size, max_pixels=max_pixels, backend=backend,
                             precision=precision, compile_model=compile_model)
    with progress_bar("tiles") as bar:
        for number, job in enumerate(jobs, start=1):
            task = bar.add_task(f"[{number}/{len(jobs)}] {job.input.name}", total=None)
            result = predict_file(pipeline, job, fmt, bands=band_tuple, on_open=partial(_set_total, bar, task),
                                  progress=partial(bar.advance, task), pixel_size_m=pixel_size)
            roads = "" if result.roads is None else (
                f"; {job.vectors}: {result.roads['edges']} lines, {result.roads['junctions']} junctions, "
                f"{result.roads['total_length_m'] / 1000:.2f} km")
            bar.console.print(f"{job.input} -> {result.output} ({result.width}×{result.height}, "
                              f"road {result.road_fraction:.1%}, {result.seconds:.2f}s){roads}")


def _predict_on_ray(inputs: list[Path], out: Path, model: Path, fmt: OutputFormat, bands: tuple | None, force: bool,
                    device: str, backend: BackendOpt, precision: PrecisionOpt, arch: Arch | None,
                    pairwise: PairwiseOpt | None, address: str | None, actors: int, gpus_per_actor: float,
                    config: PipelineConfig) -> None:
    """``predict --engine ray``: run, print the summary table, exit with the number of failed scenes."""
    from rich.console import Console

    from nltool.batch.ray_engine import ModelSpec, RayOptions, predict_files_on_ray

    spec = ModelSpec(model, device, arch.value if arch else None, pairwise.value if pairwise else None,
                     backend.value, precision.value)
    if not model.is_file():
        raise typer.BadParameter(f"model artifact not found: {model}", param_hint="--model")
    report = predict_files_on_ray(inputs, out, spec, config, fmt, RayOptions(address, actors, gpus_per_actor),
                                  bands=bands, force=force)
    Console(stderr=True).print(report.table(f"nltool predict --engine ray -> {out}"))
    for failure in report.failed:
        typer.echo(f"failed: {failure.input}: {failure.message}", err=True)
    if report.exit_status:
        raise typer.Exit(report.exit_status)


def _set_total(bar: Any, task: Any, total: int) -> None:
    """Give a progress task its total once it is known (a rich Progress and TaskID)."""
    bar.update(task, total=total)


def vectorize(
    raster: Annotated[Path, typer.Argument(help="Road mask or probability map: PNG, JPEG, TIFF or GeoTIFF.")],
    out: Annotated[Path, typer.Option(help="Road network: .geojson (WGS 84, RFC 7946) or .gpkg (the raster's CRS).")],
    threshold: Annotated[float, typer.Option(help="Road where probability > this (binary masks: any non-zero "
                                                  "pixel).")] = VECTORIZE.threshold,
    pixel_size: PixelSizeOpt = DEFAULT_PIXEL_SIZE_M,
    min_object: Annotated[float, typer.Option("--min-object-m2", help="Drop road blobs under this (m²).")] = (
        VECTORIZE.min_object_m2),
    max_hole: Annotated[float, typer.Option("--max-hole-m2", help="Fill road holes under this (m²).")] = (
        VECTORIZE.max_hole_m2),
    spur: Annotated[float, typer.Option("--spur-m", help="Prune dead-end branches reaching less than this (m) out "
                                                        "of the road they leave; merge junctions linked by less "
                                                        "road than this.")] = VECTORIZE.spur_m,
    gap: Annotated[float, typer.Option("--gap-m", help="Join dead ends this close (m) that line up.")] = (
        VECTORIZE.gap_m),
    gap_angle: Annotated[float, typer.Option("--gap-angle-deg", help="How well two ends must line up to be "
                                                                    "joined (degrees).")] = VECTORIZE.gap_angle_deg,
    min_component: Annotated[float, typer.Option("--min-component-m", help="Drop network pieces shorter than this "
                                                                          "in total (m).")] = VECTORIZE.min_component_m,
    simplify: Annotated[float, typer.Option("--simplify-m", help="Line simplification tolerance (m).")] = (
        VECTORIZE.simplify_m),
    nodes: Annotated[bool, typer.Option(help="Also write junctions and dead ends (GeoJSON Points / GeoPackage "
                                             "layer 'nodes').")] = True,
    force: Annotated[bool, typer.Option(help="Overwrite --out if it exists.")] = False,
) -> None:
    """Turn a road mask or probability map into a road network of centre lines with length and width."""
    from nltool.errors import OutputExistsError
    from nltool.vectors import vectorize_file
    from nltool.vectors.io import vector_format, write_network

    vector_format(out)
    if out.exists() and not force:
        raise OutputExistsError(f"{out} already exists; pass --force to overwrite it")
    settings = VectorizeSettings(threshold=threshold, min_object_m2=min_object, max_hole_m2=max_hole, spur_m=spur,
                                 gap_m=gap, gap_angle_deg=gap_angle, min_component_m=min_component,
                                 simplify_m=simplify)
    network = vectorize_file(raster, settings, pixel_size)
    write_network(network, out, nodes=nodes)
    summary = network.summary()
    typer.echo(f"{raster} -> {out}: {summary['edges']} lines, {summary['junctions']} junctions, "
               f"{summary['total_length_m'] / 1000:.3f} km")
    if summary["coordinates"] == "pixel":
        typer.echo(f"note: {raster} has no georeferencing; coordinates are pixels (x right, y down) and metres "
                   f"assume {pixel_size} m per pixel (--pixel-size)", err=True)


def apls_command(
    truth: Annotated[Path, typer.Option(help="Truth network (.geojson/.gpkg, any CRS) or road mask.")],
    proposal: Annotated[Path, typer.Option(help="Proposed network (.geojson/.gpkg) or mask/probability map.")],
    json_path: Annotated[Path | None, typer.Option("--json", help="Also write the result to this JSON file.")] = None,
    variant: Annotated[str, typer.Option(help="spacenet: SpaceNet's standard APLS, as CosmiQ's reference apls.py "
                                              "computes it; nltool: nltool's variant (control points on straight "
                                              "edges, no node renaming), NOT comparable with published "
                                              "APLS.")] = APLS.variant,
    linestring_delta: Annotated[float, typer.Option("--linestring-delta-m", help="Control points every this many "
                                                                                 "metres along (curved, for the "
                                                                                 "standard) edges.")] = (
        APLS.linestring_delta_m),
    max_snap: Annotated[float, typer.Option("--max-snap-dist-m", help="Control points snap onto the other network "
                                                                      "within this distance (m).")] = (
        APLS.max_snap_dist_m),
    min_path: Annotated[float, typer.Option("--min-path-length-m", help="Ignore paths shorter than this (m).")] = (
        APLS.min_path_length_m),
    max_control_points: Annotated[int, typer.Option(help="Sample this many control points of larger graphs "
                                                          "(standard: truths of 500+ nodes, this many nodes "
                                                          "per graph).")] = APLS.max_control_points,
    seed: Annotated[int, typer.Option(help="Seed of that sampling.")] = APLS.seed,
    threshold: Annotated[float, typer.Option(help="Threshold for probability-map inputs.")] = VECTORIZE.threshold,
    pixel_size: PixelSizeOpt = DEFAULT_PIXEL_SIZE_M,
) -> None:
    """APLS (SpaceNet's Average Path Length Similarity) of a proposed road network against the truth."""
    from nltool.fileio import write_json
    from nltool.vectors.compare import apls_files

    settings = AplsSettings(variant=variant, linestring_delta_m=linestring_delta, max_snap_dist_m=max_snap,
                            min_path_length_m=min_path, max_control_points=max_control_points, seed=seed)
    result = apls_files(truth, proposal, settings, VectorizeSettings(threshold=threshold), pixel_size)
    typer.echo(result.summary())
    if json_path is not None:
        write_json(json_path, {"truth": str(truth), "proposal": str(proposal), **result.to_dict(),
                               "settings": vars(settings)})
