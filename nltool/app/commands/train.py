"""``nltool train`` and ``nltool evaluate``: fit a model, score one on labelled scenes."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from nltool.app.commands.options import (
    AUTO_BACKEND,
    AUTO_PRECISION,
    DEFAULT_SCALES,
    DEFAULT_TTA,
    DEFAULTS,
    Arch,
    ArchOpt,
    BackendOption,
    BatchOpt,
    CompileOpt,
    DeviceOpt,
    ModelOpt,
    OverlapOpt,
    PairwiseOpt,
    PairwiseOption,
    PixelSizeOpt,
    PrecisionOption,
    ScalesOpt,
    ThresholdOpt,
    TileOpt,
    TTAOption,
    open_pipeline,
)
from nltool.devices import AUTO_DEVICE
from nltool.progress import progress_bar
from nltool.training.config import TrainConfig
from nltool.vectors.settings import DEFAULT_PIXEL_SIZE_M, STANDARD_VARIANT, AplsSettings, VectorizeSettings

DEFAULT_ARCH_OPT = Arch(TrainConfig.arch)
DEFAULT_PAIRWISE_OPT = PairwiseOpt(TrainConfig.pairwise)


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
                                                     "(0 = none).")] = TrainConfig.val_fraction,
    val_every: Annotated[int | None, typer.Option(help="Validate every N optimizer steps (default: at the end of "
                                                       "every epoch, and always at the end of the run).")] = None,
    arch: Annotated[Arch, typer.Option(help="Architecture (with --init from an nltool checkpoint: its own).")
                    ] = DEFAULT_ARCH_OPT,
    pairwise: Annotated[PairwiseOpt, typer.Option(help="Non-local pairwise function.")] = DEFAULT_PAIRWISE_OPT,
    encoder_weights: Annotated[str, typer.Option(help="imagenet (torchvision's ResNet34, downloads once), none, "
                                                      "or a path to a ResNet34 state dict.")] = (
        TrainConfig.encoder_weights),
    init: Annotated[Path | None, typer.Option(help="Start from these weights (fresh optimizer and schedule): an "
                                                   "nltool checkpoint, or the authors' .th with --arch.")] = None,
    freeze_encoder_steps: Annotated[int, typer.Option(help="Keep the ResNet34 encoder (weights and BatchNorm "
                                                           "statistics) fixed for the first N steps.")] = (
        TrainConfig.freeze_encoder_steps),
    epochs: Annotated[int, typer.Option(help="Maximum epochs (the authors' cap; the paper converged in 180).")] = (
        TrainConfig.epochs),
    samples_per_epoch: Annotated[int | None, typer.Option(help="Crops per epoch, drawn in proportion to image area "
                                                               "(default: enough to cover the training pixels once, "
                                                               "and at least 100 steps).")] = None,
    max_steps: Annotated[int | None, typer.Option(help="Budget of optimizer steps.")] = None,
    crop: Annotated[int, typer.Option(help="Training crop side (multiple of 32); the paper used 1024.")] = (
        TrainConfig.crop),
    batch_size: Annotated[int, typer.Option("--batch-size", help="Crops per batch (per process).")] = (
        TrainConfig.batch_size),
    accumulate: Annotated[int, typer.Option(help="Batches whose gradients add up to one optimizer step (large "
                                                 "crops on small GPUs); the effective batch size is logged.")] = (
        TrainConfig.accumulate),
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = TrainConfig.lr,
    loss: Annotated[str, typer.Option(help="bce_dice (the authors' loss) or bce.")] = TrainConfig.loss,
    lr_factor: Annotated[float, typer.Option(help="Multiply the lr by this on a loss plateau (paper: /5).")] = (
        TrainConfig.lr_factor),
    plateau_patience: Annotated[int, typer.Option(help="Reload the best weights and cut the lr after more than this "
                                                       "many epochs without a lower loss (authors: 5).")] = (
        TrainConfig.plateau_patience),
    early_stop_patience: Annotated[int, typer.Option(help="Stop after more than this many epochs without a lower "
                                                          "loss (authors: 8).")] = (
        TrainConfig.early_stop_patience),
    min_lr: Annotated[float, typer.Option(help="Stop at a plateau once the lr is below this (authors: 5e-6).")] = (
        TrainConfig.min_lr),
    resume: Annotated[Path | None, typer.Option(help="Continue a run from its last.pt, exactly (with that run's "
                                                     "own options).")] = None,
    device: DeviceOpt = TrainConfig.device,
    workers: Annotated[int, typer.Option(help="Data-loading worker processes.")] = TrainConfig.workers,
    seed: Annotated[int, typer.Option(help="Seed for the split, data order, augmentation and initial weights.")] = (
        TrainConfig.seed),
    amp: Annotated[bool, typer.Option(help="Mixed precision on CUDA (ignored on CPU).")] = TrainConfig.amp,
    channels_last: Annotated[bool, typer.Option(help="channels_last memory format for the model and batches.")
                             ] = TrainConfig.channels_last,
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


def evaluate(
    model: ModelOpt,
    data: Annotated[Path, typer.Option(help="Labelled folder in the DeepGlobe layout.")],
    tile: TileOpt = DEFAULTS.tile,
    overlap: OverlapOpt = DEFAULTS.overlap,
    tta: TTAOption = DEFAULT_TTA,
    scales: ScalesOpt = DEFAULT_SCALES,
    threshold: ThresholdOpt = DEFAULTS.threshold,
    batch_size: BatchOpt = DEFAULTS.batch_size,
    device: DeviceOpt = AUTO_DEVICE,
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
    apls_variant: Annotated[str, typer.Option(help="APLS for --apls: spacenet (SpaceNet's standard) or nltool "
                                                   "(nltool's variant, not standard).")] = STANDARD_VARIANT,
    pixel_size: PixelSizeOpt = DEFAULT_PIXEL_SIZE_M,
) -> None:
    """Score a model on labelled scenes: DeepGlobe road IoU (per image, averaged) and pooled IoU (and APLS)."""
    from rich.console import Console
    from rich.table import Table

    from nltool.data.deepglobe import find_pairs
    from nltool.evaluation import run_evaluation

    samples = find_pairs(data)
    pipeline = open_pipeline(model, device, arch, pairwise, tile=tile, overlap=overlap, tta=tta, scales=scales,
                             threshold=threshold, batch_size=batch_size, backend=backend, precision=precision,
                             compile_model=compile_model)
    config = pipeline.config
    with progress_bar("scenes") as bar:
        task = bar.add_task("evaluate", total=len(samples))
        scorer = None
        if apls or graphs is not None:
            from nltool.vectors.scoring import AplsScorer

            scorer = AplsScorer(graphs, AplsSettings(variant=apls_variant), VectorizeSettings(threshold=threshold),
                                pixel_size_m=pixel_size)
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
