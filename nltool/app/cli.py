"""The ``nltool`` command line: thin Typer commands that parse, call one function, print.

Stage packages (training/, export/, serving/) are imported inside the commands that need them,
so ``nltool --help`` stays fast and the core never depends on a stage.
"""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperGroup

from nltool import __version__
from nltool.errors import NltoolError
from nltool.imagery import DEFAULT_MAX_PIXELS
from nltool.models.archs import ARCHS
from nltool.models.nonlocal_block import PAIRWISE_FUNCTIONS


class _NltoolGroup(TyperGroup):
    """Prints an :class:`NltoolError` as one ``error: ...`` line (exit 1) instead of a traceback."""

    def invoke(self, ctx: typer.Context) -> object:
        try:
            return super().invoke(ctx)
        except NltoolError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from exc


app = typer.Typer(
    cls=_NltoolGroup,
    name="nltool",
    help="NL-LinkNet road extraction from satellite imagery: train, evaluate, predict, export, serve.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Datasets: synthetic DeepGlobe-layout roads, train/val splits.", no_args_is_help=True)
app.add_typer(data_app, name="data")

Arch = Enum("Arch", {name.replace("-", "_"): name for name in ARCHS}, type=str)  # type: ignore[misc]
PairwiseOpt = Enum("PairwiseOpt", {name: name for name in PAIRWISE_FUNCTIONS}, type=str)  # type: ignore[misc]
TTAOpt = Enum("TTAOpt", {name: name for name in ("none", "flip", "d4")}, type=str)  # type: ignore[misc]
FormatOpt = Enum("FormatOpt", {name: name for name in ("png", "tif", "prob")}, type=str)  # type: ignore[misc]

# Inference options shared by predict, evaluate, package and client (one definition each).
TileOpt = Annotated[int, typer.Option(help="Tile side in pixels (multiple of 32); the training size is 1024.")]
OverlapOpt = Annotated[int, typer.Option(help="Overlap between neighbouring tiles in pixels (at most tile/2).")]
TTAOption = Annotated[TTAOpt, typer.Option("--tta", help="Test-time augmentation: none, flip (4 flips) or d4 "
                                                      "(the paper's 8 flips/rotations).")]
ScalesOpt = Annotated[str, typer.Option(help="Multi-scale testing, e.g. '0.75,1.0,1.25' (comma or space separated).")]
ThresholdOpt = Annotated[float, typer.Option(help="Road where the averaged probability is above this (0-1).")]
BatchOpt = Annotated[int, typer.Option("--batch-size", help="Tiles per backend call.")]
MaxPixelsOpt = Annotated[int, typer.Option("--max-pixels", help="Refuse images with more pixels than this.")]
DeviceOpt = Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N (PyTorch and TensorRT backends).")]
ArchOpt = Annotated[
    Arch | None, typer.Option(help="Arch of a raw state dict (authors' .th); nltool checkpoints record it.")
]
PairwiseOption = Annotated[
    PairwiseOpt | None, typer.Option(help="Pairwise function of a raw state dict (default embedded_gaussian).")
]


ModelOpt = Annotated[Path, typer.Option(help="Checkpoint (.pt/.th), ONNX file or TensorRT .plan.")]


def _pipeline(model: Path, device: str, arch: Arch | None, pairwise: PairwiseOpt | None, *, tile: int,
              overlap: int, tta: TTAOpt, scales: str, threshold: float, batch_size: int,
              max_pixels: int = DEFAULT_MAX_PIXELS):
    """The inference pipeline the options describe (settings checked before the model is loaded)."""
    from nltool.inference import InferencePipeline, PipelineConfig, load_backend

    config = PipelineConfig(tile=tile, overlap=overlap, tta=tta.value, scales=_parse_numbers(scales, float, "--scales"),
                            threshold=threshold, batch_size=batch_size, max_pixels=max_pixels)
    backend = load_backend(model, device=device, arch=arch.value if arch else None,
                           pairwise=pairwise.value if pairwise else None)
    return InferencePipeline(backend, config)


def _parse_numbers(text: str, kind: type, option: str) -> tuple:
    """'0.75,1.0 1.25' -> (0.75, 1.0, 1.25); a bad value is a usage error naming the option."""
    try:
        return tuple(kind(part) for part in text.replace(",", " ").split())
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r} is not a list of numbers", param_hint=option) from exc


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"nltool {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """NL-LinkNet road extraction from satellite imagery: train, evaluate, predict, export, serve."""


@app.command()
def info(
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint: nltool .pt, or an authors' .th / raw state dict.")],
    arch: ArchOpt = None,
    pairwise: PairwiseOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Print a checkpoint's metadata and parameter count."""
    from nltool.models import checkpoint_summary, load_checkpoint

    loaded = load_checkpoint(
        checkpoint, arch=arch.value if arch else None, pairwise=pairwise.value if pairwise else None
    )
    summary = checkpoint_summary(loaded)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    params = f"{summary['parameters']:,} ({summary['parameters'] / 1e6:.3f}M"
    if summary["paper_parameters_m"] is not None:
        params += f"; paper Table II: {summary['paper_parameters_m']:.3f}M"
    rows = {
        "file": summary["file"],
        "format": summary["format"],
        "arch": f"{summary['arch']} ({summary['description']})",
        "pairwise": summary["pairwise"] or "-",
        "parameters": params + ")",
        "normalization": summary["normalization"],
        "nltool version": summary["nltool_version"] or "-",
        "epoch": "-" if summary["epoch"] is None else summary["epoch"],
        "best metric": ("-" if summary["best_metric"] is None
                        else f"{summary['best_metric']} ({summary['metric_name']})"),
        "training config": json.dumps(summary["training_config"]) if summary["training_config"] else "-",
    }
    width = max(map(len, rows))
    for key, value in rows.items():
        typer.echo(f"{key:<{width}}  {value}")


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the data, run, artifacts, archive, figures and report.")] = Path(
        "nltool-demo"),
    quick: Annotated[bool, typer.Option(help="A shortened run (tiny data, a few steps) that still goes through "
                                             "every stage; about two minutes, what the tests run.")] = False,
    force: Annotated[bool, typer.Option(help="Replace an earlier demo's folder at --out (only one the demo "
                                             "wrote).")] = False,
    device: Annotated[str, typer.Option(help="Training/evaluation device: auto (CUDA if present), cpu, cuda, "
                                             "cuda:N.")] = "auto",
) -> None:
    """The whole product on built-in synthetic roads: synthesize, train NL34-LinkNet, evaluate, export ONNX +
    INT8 with parity, package, serve with TorchServe on free loopback ports, request a mask over REST, and
    write a report with a figure per held-out scene. No dataset or GPU needed; under 10 minutes on 2 CPU cores."""
    from nltool.app.demo import run_demo

    report = run_demo(out, quick=quick, force=force, device=device, echo=typer.echo)
    exported = report.numbers["export"]
    typer.echo(f"report: {report.report_md}")
    if not exported["fp32"]["passed"] or not report.numbers["serve"]["identical_to_local_pipeline"]:
        typer.echo("error: ONNX parity failed or the served mask differs from the local pipeline's; see the report",
                   err=True)
        raise typer.Exit(1)


@app.command()
def predict(
    inputs: Annotated[list[Path], typer.Argument(help="Images: PNG, JPEG, TIFF or GeoTIFF, any size.")],
    model: ModelOpt,
    out: Annotated[Path, typer.Option(help="Folder for the outputs (<name>_mask.png/.tif, <name>_prob.png).")],
    tile: TileOpt = 1024,
    overlap: OverlapOpt = 128,
    tta: TTAOption = TTAOpt.none,  # type: ignore[attr-defined]
    scales: ScalesOpt = "1.0",
    threshold: ThresholdOpt = 0.5,
    output_format: Annotated[FormatOpt, typer.Option("--format", help="png: mask 255/0; tif: mask as "
                             "GeoTIFF (georeferencing kept); prob: probability as 8-bit PNG.")] = FormatOpt.png,  # type: ignore[attr-defined]
    batch_size: BatchOpt = 1,
    bands: Annotated[str | None, typer.Option(help="RGB bands of a multi-band raster, 1-based, e.g. '3,2,1'.")] = None,
    max_pixels: MaxPixelsOpt = DEFAULT_MAX_PIXELS,
    device: DeviceOpt = "auto",
    arch: ArchOpt = None,
    pairwise: PairwiseOption = None,
    force: Annotated[bool, typer.Option(help="Overwrite outputs that already exist.")] = False,
) -> None:
    """Write a road mask for each input image (tiled, with optional test-time augmentation)."""
    from nltool.inference.jobs import plan_jobs, predict_file

    band_tuple = _parse_numbers(bands, int, "--bands") if bands else None
    fmt = output_format.value
    jobs = plan_jobs(inputs, out, fmt, force)
    pipeline = _pipeline(model, device, arch, pairwise, tile=tile, overlap=overlap, tta=tta, scales=scales,
                         threshold=threshold, batch_size=batch_size, max_pixels=max_pixels)
    with _progress() as bar:
        for number, job in enumerate(jobs, start=1):
            task = bar.add_task(f"[{number}/{len(jobs)}] {job.input.name}", total=None)
            result = predict_file(pipeline, job, fmt, bands=band_tuple,  # type: ignore[arg-type]
                                  on_open=lambda n, t=task: bar.update(t, total=n),
                                  progress=lambda n, t=task: bar.advance(t, n))
            bar.console.print(f"{job.input} -> {result.output} ({result.width}×{result.height}, "
                              f"road {result.road_fraction:.1%}, {result.seconds:.1f}s)")


def _progress(unit: str = "tiles"):
    """A progress bar on stderr for long work."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn(unit),
                    TimeElapsedColumn(), console=Console(stderr=True))


@data_app.command("synth")
def data_synth(
    out: Annotated[Path, typer.Option(help="Folder to write <id>_sat.jpg + <id>_mask.png pairs into.")],
    n: Annotated[int, typer.Option(help="Number of scenes.")] = 16,
    size: Annotated[int, typer.Option(help="Scene side in pixels (32-4096).")] = 256,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed writes the same files.")] = 0,
    force: Annotated[bool, typer.Option(help="Write into a folder that already holds scenes.")] = False,
) -> None:
    """Write synthetic road scenes in the DeepGlobe layout (roads, occluders, land cover)."""
    from nltool.data.synth import SynthConfig, write_synthetic_dataset

    config = SynthConfig(n=n, size=size, seed=seed)
    with _progress("scenes") as bar:
        task = bar.add_task("synth", total=n)
        ids = write_synthetic_dataset(out, config, progress=lambda done: bar.update(task, completed=done),
                                      overwrite=force)
    typer.echo(f"wrote {len(ids)} scenes of {size}×{size} to {out}")


@data_app.command("split")
def data_split(
    data: Annotated[Path, typer.Option(help="Labelled folder in the DeepGlobe layout to split.")],
    out: Annotated[Path, typer.Option(help="New folder for train/, val/ and split.json.")],
    val_fraction: Annotated[float, typer.Option(help="Share of the scenes for val/ (at least one).")] = 0.1,
    seed: Annotated[int, typer.Option(help="Seed; the same as `nltool train --seed` holds out the same scenes.")] = 0,
) -> None:
    """Write a seeded train/val split to disk (hard links, symbolic links, or copies where links fail)."""
    from nltool.data.split import write_split

    result = write_split(data, out, val_fraction, seed)
    how = ", ".join(f"{count} {method}" for method, count in sorted(result.methods.items()))
    typer.echo(f"{result.n_train} scenes in {result.train}, {result.n_val} in {result.val} (files: {how})")


@app.command()
def train(
    ctx: typer.Context,
    data: Annotated[Path | None, typer.Option(help="Training folder in the DeepGlobe layout (<id>_sat.jpg + "
                                                   "<id>_mask.png); required here or in --config.")] = None,
    out: Annotated[Path | None, typer.Option(help="Run folder for checkpoints (last.pt, best.pt), metrics, the split "
                                                  "and config.json; required here or in --config.")] = None,
    config: Annotated[Path | None, typer.Option(help="TOML, YAML or JSON file with any of these options by Python "
                                                     "name (batch_size = 4); options given here win. A run's "
                                                     "config.json repeats that run (give a new --out).")] = None,
    val: Annotated[Path | None, typer.Option(help="Labelled validation folder; default: hold out "
                                                     "--val-fraction of --data.")] = None,
    val_fraction: Annotated[float, typer.Option(help="Share of --data held out for validation when no --val "
                                                     "(0 = none).")] = 0.1,
    val_every: Annotated[int | None, typer.Option(help="Validate every N optimizer steps (default: at the end of "
                                                       "every epoch, and always at the end of the run).")] = None,
    arch: Annotated[Arch, typer.Option(help="Architecture (with --init from an nltool checkpoint: its own).")
                    ] = Arch.nl34_linknet,  # type: ignore[attr-defined]
    pairwise: Annotated[PairwiseOpt, typer.Option(help="Non-local pairwise function.")] = PairwiseOpt.embedded_gaussian,  # type: ignore[attr-defined]
    encoder_weights: Annotated[str, typer.Option(help="imagenet (torchvision's ResNet34, downloads once), none, "
                                                      "or a path to a ResNet34 state dict.")] = "imagenet",
    init: Annotated[Path | None, typer.Option(help="Start from these weights (fresh optimizer and schedule): an "
                                                   "nltool checkpoint, or the authors' .th with --arch.")] = None,
    freeze_encoder_steps: Annotated[int, typer.Option(help="Keep the ResNet34 encoder (weights and BatchNorm "
                                                           "statistics) fixed for the first N steps.")] = 0,
    epochs: Annotated[int, typer.Option(help="Maximum epochs (the authors' cap; the paper converged in 180).")] = 500,
    samples_per_epoch: Annotated[int | None, typer.Option(help="Crops per epoch, drawn in proportion to image area "
                                                               "(default: enough to cover the training pixels once, "
                                                               "and at least 100 steps).")] = None,
    max_steps: Annotated[int | None, typer.Option(help="Budget of optimizer steps.")] = None,
    crop: Annotated[int, typer.Option(help="Training crop side (multiple of 32); the paper used 1024.")] = 1024,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Crops per batch (per process).")] = 4,
    accumulate: Annotated[int, typer.Option(help="Batches whose gradients add up to one optimizer step (large "
                                                 "crops on small GPUs); the effective batch size is logged.")] = 1,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 3e-4,
    loss: Annotated[str, typer.Option(help="bce_dice (the authors' loss) or bce.")] = "bce_dice",
    lr_factor: Annotated[float, typer.Option(help="Multiply the lr by this on a loss plateau (paper: /5).")] = 0.2,
    plateau_patience: Annotated[int, typer.Option(help="Reload the best weights and cut the lr after more than this "
                                                       "many epochs without a lower loss (authors: 5).")] = 5,
    early_stop_patience: Annotated[int, typer.Option(help="Stop after more than this many epochs without a lower "
                                                          "loss (authors: 8).")] = 8,
    min_lr: Annotated[float, typer.Option(help="Stop at a plateau once the lr is below this (authors: 5e-6).")] = 5e-6,
    resume: Annotated[Path | None, typer.Option(help="Continue a run from its last.pt, exactly (with that run's "
                                                     "own options).")] = None,
    device: DeviceOpt = "auto",
    workers: Annotated[int, typer.Option(help="Data-loading worker processes.")] = 2,
    seed: Annotated[int, typer.Option(help="Seed for the split, data order, augmentation and initial weights.")] = 0,
    amp: Annotated[bool, typer.Option(help="Mixed precision on CUDA (ignored on CPU).")] = True,
    channels_last: Annotated[bool, typer.Option(help="channels_last memory format for the model and batches.")
                             ] = True,
) -> None:
    """Train a model on DeepGlobe-layout data with the paper's recipe (CPU, CUDA, or torchrun DDP)."""
    from nltool.training.config import resolve_train_config
    from nltool.training.trainer import Trainer

    given = {name: value.value if isinstance(value, Enum) else value for name, value in ctx.params.items()
             if name not in ("config", "resume") and _given(ctx, name)}
    settings = resolve_train_config(config, given)
    if resume is None and (settings.out / "last.pt").exists():
        raise typer.BadParameter(f"{settings.out} already holds a run; continue it with --resume "
                                 f"{settings.out / 'last.pt'} or choose another --out", param_hint="--out")
    result = Trainer(settings, resume=resume, log=lambda msg: typer.echo(msg, err=True)).fit()
    if not result.is_main:
        return
    metric = "-" if result.best_metric is None else f"{result.best_metric:.4f}"
    typer.echo(f"trained {result.global_step} steps ({result.epochs_completed} epochs of {result.steps_per_epoch} "
               f"steps, effective batch size {result.effective_batch_size}); {result.stop_message}; best "
               f"{result.metric_name} {metric}; checkpoints: {result.best} and {result.last}")


def _given(ctx: typer.Context, name: str) -> bool:
    """Whether option ``name`` was given (command line or environment) rather than left at its default."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


@app.command()
def evaluate(
    model: ModelOpt,
    data: Annotated[Path, typer.Option(help="Labelled folder in the DeepGlobe layout.")],
    tile: TileOpt = 1024,
    overlap: OverlapOpt = 128,
    tta: TTAOption = TTAOpt.none,  # type: ignore[attr-defined]
    scales: ScalesOpt = "1.0",
    threshold: ThresholdOpt = 0.5,
    batch_size: BatchOpt = 1,
    device: DeviceOpt = "auto",
    arch: ArchOpt = None,
    pairwise: PairwiseOption = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the full report (per-image IoU, "
                                                                     "settings) to this JSON file.")] = None,
) -> None:
    """Score a model on labelled scenes: DeepGlobe road IoU (per image, averaged) and pooled IoU."""
    from rich.console import Console
    from rich.table import Table

    from nltool.data.deepglobe import find_pairs
    from nltool.evaluation import run_evaluation

    samples = find_pairs(data)
    pipeline = _pipeline(model, device, arch, pairwise, tile=tile, overlap=overlap, tta=tta, scales=scales,
                         threshold=threshold, batch_size=batch_size)
    config = pipeline.config
    with _progress("scenes") as bar:
        task = bar.add_task("evaluate", total=len(samples))
        report = run_evaluation(pipeline, samples, data, json_path, progress=lambda n: bar.advance(task, n))
    table = Table(title=f"{model.name} on {data} ({report['n_images']} scenes, tta {tta.value}, "
                        f"scales {','.join(map(str, config.scales))}, threshold {threshold})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("definition")
    for key in ("mean_iou_per_image", "pooled_iou"):
        table.add_row(key, f"{report[key]['value']:.4f}", report[key]["definition"])
    Console().print(table)
    if json_path:
        typer.echo(f"report: {json_path}")


@app.command()
def export(
    checkpoint: Annotated[Path, typer.Option(help="Checkpoint to export (nltool .pt, or an authors' .th with "
                                                  "--arch).")],
    out: Annotated[Path, typer.Option(help="Folder for model.onnx, model.int8.onnx, model.*.plan and parity.json.")],
    arch: ArchOpt = None,
    pairwise: PairwiseOption = None,
    onnx: Annotated[bool, typer.Option(help="Keep the FP32 ONNX artifact (it is always built: TensorRT and INT8 "
                                            "start from it).")] = True,
    trt: Annotated[bool, typer.Option(help="Also build TensorRT engines (needs a CUDA GPU and the [trt] "
                                           "extra).")] = False,
    fp16: Annotated[bool, typer.Option(help="Build the TensorRT engine in FP16 instead of FP32.")] = False,
    int8: Annotated[bool, typer.Option(help="Also write an INT8 QDQ ONNX (and an INT8 engine with --trt).")] = False,
    calib: Annotated[Path | None, typer.Option(help="Folder of calibration images for --int8.")] = None,
    int8_keep_float: Annotated[str, typer.Option(help="Conv groups --int8 leaves in float, comma-separated: stem, "
                                                      "nonlocal, decoder (slower, closer to FP32; see "
                                                      "docs/performance.md). Default: none.")] = "",
    opset: Annotated[int, typer.Option(help="ONNX opset (17-25).", min=17, max=25)] = 18,
    min_batch: Annotated[int, typer.Option(help="TensorRT profile: smallest batch.")] = 1,
    opt_batch: Annotated[int, typer.Option(help="TensorRT profile: batch the kernels are tuned for.")] = 1,
    max_batch: Annotated[int, typer.Option(help="TensorRT profile: largest batch.")] = 4,
    min_side: Annotated[int, typer.Option(help="TensorRT profile: smallest tile side (multiple of 32).")] = 256,
    opt_side: Annotated[int, typer.Option(help="TensorRT profile: tile side the kernels are tuned for.")] = 1024,
    max_side: Annotated[int, typer.Option(help="TensorRT profile: largest tile side.")] = 1024,
    workspace_gib: Annotated[float, typer.Option("--workspace-gib", help="TensorRT builder workspace.")] = 4.0,
    device: Annotated[str, typer.Option(help="Device of the PyTorch reference for parity (cpu, cuda).")] = "cpu",
    force: Annotated[bool, typer.Option(help="Replace artifacts already in --out.")] = False,
) -> None:
    """Export a checkpoint to ONNX (+ INT8, + TensorRT) and measure each artifact's parity."""
    from nltool.export.artifacts import ExportRequest, export_artifacts
    from nltool.export.tensorrt_build import EngineProfile

    request = ExportRequest(
        checkpoint=checkpoint, out=out, arch=arch.value if arch else None,
        pairwise=pairwise.value if pairwise else None, onnx=onnx, trt=trt, fp16=fp16, int8=int8, calib=calib,
        int8_keep_float=tuple(int8_keep_float.replace(",", " ").split()), opset=opset,
        profile=EngineProfile(min_batch, opt_batch, max_batch, min_side, opt_side, max_side),
        workspace_gib=workspace_gib, device=device, force=force)
    result = export_artifacts(request, log=lambda msg: typer.echo(f"[export] {msg}", err=True))
    for report in result.reports:
        verdict = "ok" if report.passed else f"FAILED: {report.failure()}"
        typer.echo(f"{report.artifact}: max |Δprob| {report.max_abs:.2e}, mean {report.mean_abs:.2e}, "
                   f"mask IoU {report.min_mask_iou:.4f} ({report.precision}) {verdict}")
    typer.echo(f"parity report: {result.parity}")
    if not result.passed:
        raise typer.Exit(1)


@app.command()
def package(
    model: ModelOpt,
    out: Annotated[Path, typer.Option(help="Model store folder for <name>.mar and config.properties.")],
    name: Annotated[str, typer.Option(help="Model name in TorchServe (the URL is /predictions/<name>).")] = "nllinknet",
    tile: TileOpt = 1024,
    overlap: OverlapOpt = 128,
    tta: TTAOption = TTAOpt.none,  # type: ignore[attr-defined]
    scales: ScalesOpt = "1.0",
    threshold: ThresholdOpt = 0.5,
    output_format: Annotated[FormatOpt, typer.Option("--format", help="Default answer: png mask, tif "
                             "(GeoTIFF for GeoTIFF requests) or prob.")] = FormatOpt.png,  # type: ignore[attr-defined]
    max_pixels: MaxPixelsOpt = DEFAULT_MAX_PIXELS,
    workers: Annotated[int, typer.Option(help="TorchServe workers (processes) for this model.")] = 1,
    arch: ArchOpt = None,
    pairwise: PairwiseOption = None,
    inference_port: Annotated[int, typer.Option(help="REST inference port on 127.0.0.1.")] = 8080,
    management_port: Annotated[int, typer.Option(help="Management API port on 127.0.0.1.")] = 8081,
    metrics_port: Annotated[int, typer.Option(help="Metrics port on 127.0.0.1.")] = 8082,
    grpc_port: Annotated[int, typer.Option(help="gRPC inference port on 127.0.0.1.")] = 7070,
    grpc_management_port: Annotated[int, typer.Option(help="gRPC management port on 127.0.0.1.")] = 7071,
    worker_port: Annotated[int, typer.Option(help="First worker socket number (/tmp/.ts.sock.N); give each "
                                                  "TorchServe on a machine its own range.")] = 9000,
    force: Annotated[bool, typer.Option(help="Replace an existing archive of the same name.")] = False,
) -> None:
    """Package a model as a TorchServe archive and write a loopback-only, token-protected config."""
    from nltool.serving.package import Ports, package_model
    from nltool.serving.settings import ServingSettings

    settings = ServingSettings.from_dict({
        "tile": tile, "overlap": overlap, "tta": tta.value, "scales": _parse_numbers(scales, float, "--scales"),
        "threshold": threshold, "format": output_format.value, "max_pixels": max_pixels,
        "arch": arch.value if arch else None, "pairwise": pairwise.value if pairwise else None})
    result = package_model(model, out, name=name, settings=settings, workers=workers, force=force,
                           ports=Ports(inference_port, management_port, metrics_port, grpc_port, grpc_management_port,
                                       worker_port))
    typer.echo(f"archive: {result.mar}\nconfig:  {result.config}\nstart TorchServe with:\n  {result.command}")


@app.command()
def client(
    image: Annotated[Path, typer.Argument(help="Image to send (PNG, JPEG, TIFF/GeoTIFF).")],
    out: Annotated[Path, typer.Option(help="Where to write the answer (mask PNG, GeoTIFF or probability PNG).")],
    url: Annotated[str, typer.Option(help="TorchServe REST inference address (used unless --grpc is given).")] = (
        "http://127.0.0.1:8080"),
    grpc: Annotated[str | None, typer.Option(help="host:port of TorchServe's gRPC inference API "
                                                     "(e.g. 127.0.0.1:7070); sends over gRPC instead of REST.")] = None,
    model_name: Annotated[str, typer.Option(help="Model name given to TorchServe.")] = "nllinknet",
    token_file: Annotated[Path, typer.Option(help="TorchServe's key_file.json (written where it was started).")] = Path(
        "key_file.json"),
    tta: Annotated[str | None, typer.Option(help="Override the server's TTA (none, flip, d4), if allowed.")] = None,
    threshold: Annotated[float | None, typer.Option(help="Override the server's threshold.")] = None,
    output_format: Annotated[str | None, typer.Option("--format", help="Override the answer format "
                                                                          "(png, tif, prob).")] = None,
    summary: Annotated[Path | None, typer.Option(help="Also write the server's JSON summary here (size, road "
                                                         "fraction, tiles, seconds per stage).")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the answer.")] = 600.0,
    retries: Annotated[int, typer.Option(min=0, help="Retries, with back-off, while the server is busy (503 / "
                                                  "UNAVAILABLE) or still starting (no connection or token file "
                                                  "yet).")] = 3,
    force: Annotated[bool, typer.Option(help="Overwrite --out (and --summary) if they exist.")] = False,
) -> None:
    """Request a road mask from a running TorchServe over REST (default) or gRPC (--grpc)."""
    import json

    from nltool.fileio import atomic_path
    from nltool.serving.client import (
        BaseClient,
        ClientError,
        GrpcClient,
        RestClient,
        wait_for_token,
    )

    for path in (out, summary):
        if path is not None and path.exists() and not force:
            raise ClientError(f"{path} already exists; pass --force to overwrite it")
    if not image.is_file():
        raise ClientError(f"image not found: {image}")
    token = wait_for_token(token_file, retries)
    transport: BaseClient = (GrpcClient(grpc, model_name, token, timeout, retries) if grpc is not None
                             else RestClient(url, model_name, token, timeout, retries))
    options = {"tta": tta, "threshold": threshold, "fmt": output_format}
    if summary is None:
        answer, details = transport.predict(image.read_bytes(), **options), None
    else:
        answer, details = transport.predict_with_summary(image.read_bytes(), **options)
    with atomic_path(out) as tmp:
        tmp.write_bytes(answer)
    message = f"{image} -> {out} ({len(answer):,} bytes)"
    if summary is not None and details is not None:
        with atomic_path(summary) as tmp:
            tmp.write_text(json.dumps(details, indent=2))
        message += f"; road fraction {details['road_fraction']:.3f}, summary in {summary}"
    typer.echo(message)


def main() -> None:
    """Console-script entry point."""
    app()
