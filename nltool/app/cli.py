"""The ``nltool`` command line: thin Typer commands that parse, call one function, print.

Stage packages (training/, export/, serving/) are imported inside the commands that need them,
so ``nltool --help`` stays fast and the core never depends on a stage.
"""

from __future__ import annotations

import json
from enum import Enum
from functools import partial
from pathlib import Path
from typing import Annotated, Any, cast

import typer
from typer.core import TyperGroup

from nltool import __version__
from nltool.errors import NltoolError
from nltool.inference.config import OUTPUT_FORMATS, TTA_MODES, OutputFormat, PipelineConfig
from nltool.inference.selection import BACKENDS, PRECISIONS
from nltool.models.archs import ARCHS, DEFAULT_ARCH, DEFAULT_PAIRWISE, PAIRWISE_FUNCTIONS
from nltool.progress import progress_bar


class _NltoolGroup(TyperGroup):
    """Prints an :class:`NltoolError` as one ``error: ...`` line (exit 1) instead of a traceback."""

    def invoke(self, ctx: Any) -> object:  # a click Context (Typer >= 0.29 vendors click)
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
TTAOpt = Enum("TTAOpt", {name: name for name in TTA_MODES}, type=str)  # type: ignore[misc]
FormatOpt = Enum("FormatOpt", {name: name for name in OUTPUT_FORMATS}, type=str)  # type: ignore[misc]
BackendOpt = Enum("BackendOpt", {name: name for name in BACKENDS}, type=str)  # type: ignore[misc]
PrecisionOpt = Enum("PrecisionOpt", {name: name for name in PRECISIONS}, type=str)  # type: ignore[misc]
DEFAULTS = PipelineConfig()
"""The pipeline's defaults, which every inference command's option defaults are read from."""
DEFAULT_TTA = TTAOpt(DEFAULTS.tta)
DEFAULT_SCALES = ",".join(map(str, DEFAULTS.scales))
DEFAULT_FORMAT = FormatOpt(OUTPUT_FORMATS[0])
DEFAULT_ARCH_OPT = Arch(DEFAULT_ARCH)
DEFAULT_PAIRWISE_OPT = PairwiseOpt(DEFAULT_PAIRWISE)
AUTO_BACKEND = BackendOpt("auto")
AUTO_PRECISION = PrecisionOpt("auto")

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
BackendOption = Annotated[BackendOpt, typer.Option("--backend", help="What runs the model: auto (the fastest "
                          "installed for the model file and precision; the choice is printed), torch (.pt/.th), "
                          "onnxruntime (.onnx), openvino (.onnx/.xml, CPU; the [openvino] extra) or tensorrt "
                          "(.plan, CUDA).")]
CompileOpt = Annotated[bool, typer.Option("--compile", help="Checkpoints (--backend torch): run the model "
                       "through torch.compile. The first run per tile shape compiles (about a minute for NL34 on "
                       "2 cores; cached in ~/.cache/nltool/torch-inductor, seconds afterwards), then 1.1-1.3× "
                       "faster than eager fp32.")]
PrecisionOption = Annotated[PrecisionOpt, typer.Option("--precision", help="auto: the model file's own (fp32, or "
                            "int8 for an INT8 export) - masks as exported; bf16: CPUs with AVX512-BF16/AMX "
                            "(openvino, torch); fp16: CUDA (torch); int8: an INT8 model file.")]
ArchOpt = Annotated[
    Arch | None, typer.Option(help="Arch of a raw state dict (authors' .th); nltool checkpoints record it.")
]
PairwiseOption = Annotated[
    PairwiseOpt | None, typer.Option(help="Pairwise function of a raw state dict (default embedded_gaussian).")
]


ModelOpt = Annotated[Path, typer.Option(help="Checkpoint (.pt/.th), ONNX file or TensorRT .plan.")]
VectorsOpt = Enum("VectorsOpt", {name: name for name in ("geojson", "gpkg")}, type=str)  # type: ignore[misc]
PixelSizeOpt = Annotated[float, typer.Option("--pixel-size", min=0.01, help="Metres per pixel of images without "
                                             "georeferencing (road-network thresholds and lengths are in metres).")]


def _config(*, tile: int, overlap: int, tta: TTAOpt, scales: str, threshold: float, batch_size: int,
            max_pixels: int = DEFAULTS.max_pixels) -> PipelineConfig:
    """The pipeline settings the options describe (checked before any model is loaded)."""
    return PipelineConfig(tile=tile, overlap=overlap, tta=tta.value, scales=_parse_numbers(scales, float, "--scales"),
                          threshold=threshold, batch_size=batch_size, max_pixels=max_pixels)


def _pipeline(model: Path, device: str, arch: Arch | None, pairwise: PairwiseOpt | None, *, tile: int,
              overlap: int, tta: TTAOpt, scales: str, threshold: float, batch_size: int,
              max_pixels: int = DEFAULTS.max_pixels, backend: BackendOpt = AUTO_BACKEND,
              precision: PrecisionOpt = AUTO_PRECISION, compile_model: bool = False):
    """The inference pipeline the options describe (settings checked before the model is loaded);
    the backend chosen is printed on stderr."""
    from nltool.inference import InferencePipeline, load_backend

    config = _config(tile=tile, overlap=overlap, tta=tta, scales=scales, threshold=threshold, batch_size=batch_size,
                     max_pixels=max_pixels)
    loaded = load_backend(model, device=device, backend=backend.value, precision=precision.value,
                          compile=compile_model, arch=arch.value if arch else None,
                          pairwise=pairwise.value if pairwise else None)
    if loaded.choice is not None:
        typer.echo(f"backend: {loaded.choice.summary(model)}", err=True)
    return InferencePipeline(loaded, config)


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


class EngineOpt(str, Enum):
    """Where ``nltool predict`` runs."""

    local = "local"
    ray = "ray"


@app.command()
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
    device: DeviceOpt = "auto",
    backend: BackendOption = AUTO_BACKEND,
    precision: PrecisionOption = AUTO_PRECISION,
    compile_model: CompileOpt = False,
    arch: ArchOpt = None,
    pairwise: PairwiseOption = None,
    force: Annotated[bool, typer.Option(help="Overwrite outputs that already exist (--engine ray: also redo "
                                             "scenes whose outputs are up to date).")] = False,
    vectors: Annotated[VectorsOpt | None, typer.Option(help="Also write the road network beside each mask: "
                       "<name>_roads.geojson (WGS 84) or .gpkg (the image's CRS).")] = None,
    pixel_size: PixelSizeOpt = 0.5,
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

    band_tuple = _parse_numbers(bands, int, "--bands") if bands else None
    fmt = cast(OutputFormat, output_format.value)
    inputs = expand_inputs(inputs, exclude=out)
    if engine is EngineOpt.ray:
        if vectors is not None:
            raise typer.BadParameter("road networks are written by --engine local only", param_hint="--vectors")
        if compile_model:
            raise typer.BadParameter("--engine ray runs eager models only", param_hint="--compile")
        _predict_on_ray(inputs, out, model, fmt, band_tuple, force, device, backend, precision, arch, pairwise,
                        address, actors, gpus_per_actor, _config(tile=tile, overlap=overlap, tta=tta, scales=scales,
                                                threshold=threshold, batch_size=batch_size, max_pixels=max_pixels))
        return
    from nltool.inference.jobs import plan_jobs, predict_file

    jobs = plan_jobs(inputs, out, fmt, force, vectors.value if vectors else None)
    pipeline = _pipeline(model, device, arch, pairwise, tile=tile, overlap=overlap, tta=tta, scales=scales,
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
    with progress_bar("scenes") as bar:
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
                    ] = DEFAULT_ARCH_OPT,
    pairwise: Annotated[PairwiseOpt, typer.Option(help="Non-local pairwise function.")] = DEFAULT_PAIRWISE_OPT,
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
    tile: TileOpt = DEFAULTS.tile,
    overlap: OverlapOpt = DEFAULTS.overlap,
    tta: TTAOption = DEFAULT_TTA,
    scales: ScalesOpt = DEFAULT_SCALES,
    threshold: ThresholdOpt = DEFAULTS.threshold,
    batch_size: BatchOpt = DEFAULTS.batch_size,
    device: DeviceOpt = "auto",
    backend: BackendOption = AUTO_BACKEND,
    precision: PrecisionOption = AUTO_PRECISION,
    compile_model: CompileOpt = False,
    arch: ArchOpt = None,
    pairwise: PairwiseOption = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the full report (per-image IoU, "
                                                                     "settings) to this JSON file.")] = None,
    apls: Annotated[bool, typer.Option("--apls", help="Also vectorize each prediction and score it by APLS "
                                                      "against the truth network.")] = False,
    graphs: Annotated[Path | None, typer.Option(help="Folder of truth networks <id>.geojson for --apls (default: "
                                                     "vectorize the truth masks).")] = None,
    pixel_size: PixelSizeOpt = 0.5,
) -> None:
    """Score a model on labelled scenes: DeepGlobe road IoU (per image, averaged) and pooled IoU (and APLS)."""
    from rich.console import Console
    from rich.table import Table

    from nltool.data.deepglobe import find_pairs
    from nltool.evaluation import run_evaluation

    samples = find_pairs(data)
    pipeline = _pipeline(model, device, arch, pairwise, tile=tile, overlap=overlap, tta=tta, scales=scales,
                         threshold=threshold, batch_size=batch_size, backend=backend, precision=precision,
                         compile_model=compile_model)
    config = pipeline.config
    with progress_bar("scenes") as bar:
        task = bar.add_task("evaluate", total=len(samples))
        scorer = None
        if apls or graphs is not None:
            from nltool.vectors.scoring import AplsScorer
            from nltool.vectors.settings import VectorizeSettings

            scorer = AplsScorer(graphs, vectorize=VectorizeSettings(threshold=threshold), pixel_size_m=pixel_size)
        report = run_evaluation(pipeline, samples, data, json_path, progress=lambda n: bar.advance(task, n),
                                apls=scorer)
    table = Table(title=f"{model.name} on {data} ({report['n_images']} scenes, tta {tta.value}, "
                        f"scales {','.join(map(str, config.scales))}, threshold {threshold})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("definition")
    for key in ("mean_iou_per_image", "pooled_iou"):
        table.add_row(key, f"{report[key]['value']:.4f}", report[key]["definition"])
    if "apls" in report:
        entry = report["apls"]["mean_apls_per_image"]
        table.add_row("mean_apls_per_image", f"{entry['value']:.4f}", entry["definition"])
    Console().print(table)
    if json_path:
        typer.echo(f"report: {json_path}")


@app.command()
def vectorize(
    raster: Annotated[Path, typer.Argument(help="Road mask or probability map: PNG, JPEG, TIFF or GeoTIFF.")],
    out: Annotated[Path, typer.Option(help="Road network: .geojson (WGS 84, RFC 7946) or .gpkg (the raster's CRS).")],
    threshold: Annotated[float, typer.Option(help="Road where probability > this (binary masks: any non-zero "
                                                  "pixel).")] = 0.5,
    pixel_size: PixelSizeOpt = 0.5,
    min_object: Annotated[float, typer.Option("--min-object-m2", help="Drop road blobs under this (m²).")] = 40.0,
    max_hole: Annotated[float, typer.Option("--max-hole-m2", help="Fill road holes under this (m²).")] = 40.0,
    spur: Annotated[float, typer.Option("--spur-m", help="Prune dead-end branches reaching less than this (m) out "
                                                        "of the road they leave; merge junctions linked by less "
                                                        "road than this.")] = 6.0,
    gap: Annotated[float, typer.Option("--gap-m", help="Join dead ends this close (m) that line up.")] = 10.0,
    gap_angle: Annotated[float, typer.Option("--gap-angle-deg", help="How well two ends must line up to be "
                                                                    "joined (degrees).")] = 30.0,
    min_component: Annotated[float, typer.Option("--min-component-m", help="Drop network pieces shorter than this "
                                                                          "in total (m).")] = 20.0,
    simplify: Annotated[float, typer.Option("--simplify-m", help="Line simplification tolerance (m).")] = 1.0,
    nodes: Annotated[bool, typer.Option(help="Also write junctions and dead ends (GeoJSON Points / GeoPackage "
                                             "layer 'nodes').")] = True,
    force: Annotated[bool, typer.Option(help="Overwrite --out if it exists.")] = False,
) -> None:
    """Turn a road mask or probability map into a road network of centre lines with length and width."""
    from nltool.errors import OutputExistsError
    from nltool.vectors import VectorizeSettings, vectorize_file
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


@app.command("apls")
def apls_command(
    truth: Annotated[Path, typer.Option(help="Truth network (.geojson/.gpkg, any CRS) or road mask.")],
    proposal: Annotated[Path, typer.Option(help="Proposed network (.geojson/.gpkg) or mask/probability map.")],
    json_path: Annotated[Path | None, typer.Option("--json", help="Also write the result to this JSON file.")] = None,
    linestring_delta: Annotated[float, typer.Option("--linestring-delta-m", help="Control points every this many "
                                                                                 "metres along edges.")] = 50.0,
    max_snap: Annotated[float, typer.Option("--max-snap-dist-m", help="Control points snap onto the other network "
                                                                      "within this distance (m).")] = 4.0,
    min_path: Annotated[float, typer.Option("--min-path-length-m", help="Ignore paths shorter than this (m).")] = 10.0,
    max_control_points: Annotated[int, typer.Option(help="Sample this many control points of larger graphs.")] = 500,
    seed: Annotated[int, typer.Option(help="Seed of that sampling.")] = 0,
    threshold: Annotated[float, typer.Option(help="Threshold for probability-map inputs.")] = 0.5,
    pixel_size: PixelSizeOpt = 0.5,
) -> None:
    """APLS (SpaceNet's Average Path Length Similarity) of a proposed road network against the truth."""
    from nltool.fileio import write_json
    from nltool.vectors.apls import AplsSettings
    from nltool.vectors.compare import apls_files
    from nltool.vectors.settings import VectorizeSettings

    settings = AplsSettings(linestring_delta_m=linestring_delta, max_snap_dist_m=max_snap,
                            min_path_length_m=min_path, max_control_points=max_control_points, seed=seed)
    result = apls_files(truth, proposal, settings, VectorizeSettings(threshold=threshold), pixel_size)
    typer.echo(f"APLS {result.apls:.4f} (truth->proposal {result.truth_to_proposal:.4f} over {result.truth_paths} "
               f"paths, proposal->truth {result.proposal_to_truth:.4f} over {result.proposal_paths} paths)")
    if json_path is not None:
        write_json(json_path, {"truth": str(truth), "proposal": str(proposal), **result.to_dict(),
                               "settings": vars(settings)})


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
    int8_keep_float: Annotated[str, typer.Option(help="Conv groups --int8 leaves in float: auto (the fewest that "
                                                      "keep INT8 masks within 0.98 IoU of FP32, measured on held-out "
                                                      "calibration images), none, or a comma list of stem, nonlocal, "
                                                      "decoder (see docs/performance.md).")] = "auto",
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
    from nltool.export.int8_auto import parse_keep_float
    from nltool.export.tensorrt_build import EngineProfile

    request = ExportRequest(
        checkpoint=checkpoint, out=out, arch=arch.value if arch else None,
        pairwise=pairwise.value if pairwise else None, onnx=onnx, trt=trt, fp16=fp16, int8=int8, calib=calib,
        int8_keep_float=parse_keep_float(int8_keep_float), opset=opset,
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


class TargetOpt(str, Enum):
    """What ``nltool package`` writes for."""

    torchserve = "torchserve"
    kserve = "kserve"


@app.command()
def package(
    model: ModelOpt,
    out: Annotated[Path, typer.Option(help="Model store folder for <name>.mar and config.properties (--target "
                                           "kserve: the folder to upload, plus inferenceservice.yaml).")],
    name: Annotated[str, typer.Option(help="Model name in TorchServe (the URL is /predictions/<name>).")] = "nllinknet",
    tile: TileOpt = DEFAULTS.tile,
    overlap: OverlapOpt = DEFAULTS.overlap,
    tta: TTAOption = DEFAULT_TTA,
    scales: ScalesOpt = DEFAULT_SCALES,
    threshold: ThresholdOpt = DEFAULTS.threshold,
    output_format: Annotated[FormatOpt, typer.Option("--format", help="Default answer: png mask, tif "
                             "(GeoTIFF for GeoTIFF requests) or prob.")] = DEFAULT_FORMAT,
    max_pixels: MaxPixelsOpt = DEFAULTS.max_pixels,
    workers: Annotated[int, typer.Option(help="TorchServe workers (processes) for this model.")] = 1,
    backend: BackendOption = AUTO_BACKEND,
    precision: PrecisionOption = AUTO_PRECISION,
    compile_model: CompileOpt = False,
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
    onnx_tensorrt: Annotated[bool, typer.Option(help="ONNX on GPU workers: use onnxruntime's TensorRT provider "
                                                     "(engines for this pipeline's tile shapes, cached).")] = False,
    tensorrt_cache: Annotated[Path | None, typer.Option(help="Engine cache of --onnx-tensorrt (default: "
                                                             "~/.cache/nltool/onnxruntime-tensorrt).")] = None,
    target: Annotated[TargetOpt, typer.Option(help="torchserve: a model store for torchserve --start; kserve: "
                                                   "the layout KServe's TorchServe runtime loads and an "
                                                   "InferenceService manifest (port options do not apply).")] = (
        TargetOpt.torchserve),
    storage_uri: Annotated[str | None, typer.Option(help="--target kserve: where --out will be uploaded (s3://, "
                                                            "gs://, pvc://...); default pvc://nltool-models/<name>.")
                           ] = None,
    cpu: Annotated[str, typer.Option(help="--target kserve: CPU request and limit per replica.")] = "2",
    memory: Annotated[str, typer.Option(help="--target kserve: memory request and limit per replica.")] = "4Gi",
    gpus: Annotated[int, typer.Option(help="--target kserve: GPUs per replica (nvidia.com/gpu).")] = 0,
    min_replicas: Annotated[int, typer.Option(help="--target kserve: fewest replicas (0 scales to zero).")] = 1,
    max_replicas: Annotated[int, typer.Option(help="--target kserve: most replicas.")] = 1,
) -> None:
    """Package a model as a TorchServe archive and write a loopback-only, token-protected config
    (or, with --target kserve, what KServe's TorchServe runtime loads and its InferenceService)."""
    from nltool.serving.package import Ports, package_model
    from nltool.serving.settings import ServingSettings

    settings = ServingSettings.from_dict({
        "tile": tile, "overlap": overlap, "tta": tta.value, "scales": _parse_numbers(scales, float, "--scales"),
        "threshold": threshold, "format": output_format.value, "max_pixels": max_pixels,
        "arch": arch.value if arch else None, "pairwise": pairwise.value if pairwise else None,
        "backend": backend.value, "precision": precision.value, "compile": compile_model,
        "onnx_tensorrt": onnx_tensorrt,
        "tensorrt_cache": str(tensorrt_cache) if tensorrt_cache else None})
    if target is TargetOpt.kserve:
        from nltool.serving.kserve import Deployment, package_for_kserve

        deployment = Deployment(storage_uri or f"pvc://nltool-models/{name}", cpu, memory, gpus, min_replicas,
                                max_replicas)
        kserve = package_for_kserve(model, out, deployment, name=name, settings=settings, workers=workers,
                                    force=force)
        typer.echo(f"archive: {kserve.mar}\nconfig:  {kserve.config}\nmanifest: {kserve.manifest}\n"
                   f"upload {out}/config and {out}/model-store to {deployment.storage_uri}, then:\n"
                   f"  kubectl apply -f {kserve.manifest}")
        return
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
    kserve: Annotated[str | None, typer.Option(help="URL of a KServe InferenceService (its status.url); sends "
                                                       "KServe's v1 protocol. No TorchServe token: see "
                                                       "--bearer-token-file.")] = None,
    bearer_token_file: Annotated[Path | None, typer.Option(help="--kserve: a file holding the bearer token "
                                                                   "KServe's ingress expects, if any.")] = None,
    model_name: Annotated[str, typer.Option(help="Model name given to TorchServe.")] = "nllinknet",
    token_file: Annotated[Path, typer.Option(help="TorchServe's key_file.json (written where it was started).")] = Path(
        "key_file.json"),
    tta: Annotated[str | None, typer.Option(help="Override the server's TTA (none, flip, d4), if allowed.")] = None,
    threshold: Annotated[float | None, typer.Option(help="Override the server's threshold.")] = None,
    output_format: Annotated[str | None, typer.Option("--format", help="Override the answer format (png, tif, "
                                                                          "prob; geojson: road network).")] = None,
    summary: Annotated[Path | None, typer.Option(help="Also write the server's JSON summary here (size, road "
                                                         "fraction, tiles, seconds per stage).")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the answer.")] = 600.0,
    retries: Annotated[int, typer.Option(min=0, help="Retries, with back-off, while the server is busy (503 / "
                                                  "UNAVAILABLE) or still starting (no connection or token file "
                                                  "yet).")] = 3,
    force: Annotated[bool, typer.Option(help="Overwrite --out (and --summary) if they exist.")] = False,
) -> None:
    """Request a road mask from a running TorchServe over REST (default) or gRPC (--grpc), or from a KServe
    InferenceService (--kserve)."""

    from nltool.fileio import atomic_path, write_json
    from nltool.serving.client import (
        BaseClient,
        ClientError,
        GrpcClient,
        KServeClient,
        RestClient,
        wait_for_token,
    )

    for path in (out, summary):
        if path is not None and path.exists() and not force:
            raise ClientError(f"{path} already exists; pass --force to overwrite it")
    if not image.is_file():
        raise ClientError(f"image not found: {image}")
    transport: BaseClient
    if kserve is not None:
        bearer = bearer_token_file.read_text().strip() if bearer_token_file else None
        transport = KServeClient(kserve, model_name, bearer, timeout, retries)
    else:
        token = wait_for_token(token_file, retries)
        transport = (GrpcClient(grpc, model_name, token, timeout, retries) if grpc is not None
                     else RestClient(url, model_name, token, timeout, retries))
    if summary is None:
        answer, details = transport.predict(image.read_bytes(), tta=tta, threshold=threshold, fmt=output_format), None
    else:
        answer, details = transport.predict_with_summary(image.read_bytes(), tta=tta, threshold=threshold,
                                                         fmt=output_format)
    with atomic_path(out) as tmp:
        tmp.write_bytes(answer)
    message = f"{image} -> {out} ({len(answer):,} bytes)"
    if summary is not None and details is not None:
        write_json(summary, details)
        message += f"; road fraction {details['road_fraction']:.3f}, summary in {summary}"
    typer.echo(message)


def main() -> None:
    """Console-script entry point."""
    app()
