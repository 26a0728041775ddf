"""``nltool data synth`` and ``nltool data split``: synthetic DeepGlobe-layout scenes and train/val splits."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nltool.progress import progress_bar
from nltool.training.config import TrainConfig


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


def data_split(
    data: Annotated[Path, typer.Option(help="Labelled folder in the DeepGlobe layout to split.")],
    out: Annotated[Path, typer.Option(help="New folder for train/, val/ and split.json.")],
    val_fraction: Annotated[float, typer.Option(help="Share of the scenes for val/ (at least one).")] = (
        TrainConfig.val_fraction),
    seed: Annotated[int, typer.Option(help="Seed; the same as `nltool train --seed` holds out the same scenes.")] = (
        TrainConfig.seed),
) -> None:
    """Write a seeded train/val split to disk (hard links, symbolic links, or copies where links fail)."""
    from nltool.data.split import write_split

    result = write_split(data, out, val_fraction, seed)
    how = ", ".join(f"{count} {method}" for method, count in sorted(result.methods.items()))
    typer.echo(f"{result.n_train} scenes in {result.train}, {result.n_val} in {result.val} (files: {how})")
