"""The ``nltool`` command line: thin Typer commands that parse, call one function, print.

Stage packages (training/, export/, serving/) are imported inside the commands that need them,
so ``nltool --help`` stays fast and the core never depends on a stage.
"""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from nltool import __version__
from nltool.errors import NltoolError
from nltool.models.archs import ARCHS
from nltool.models.nonlocal_block import PAIRWISE_FUNCTIONS

app = typer.Typer(
    name="nltool",
    help="NL-LinkNet road extraction from satellite imagery: train, evaluate, predict, export, serve.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Datasets: synthetic DeepGlobe-layout roads.", no_args_is_help=True)
app.add_typer(data_app, name="data")

Arch = Enum("Arch", {name.replace("-", "_"): name for name in ARCHS}, type=str)  # type: ignore[misc]
PairwiseOpt = Enum("PairwiseOpt", {name: name for name in PAIRWISE_FUNCTIONS}, type=str)  # type: ignore[misc]


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
    arch: Annotated[
        Optional[Arch], typer.Option(help="Arch of a raw state dict (authors' .th); nltool checkpoints record it.")
    ] = None,
    pairwise: Annotated[
        Optional[PairwiseOpt], typer.Option(help="Pairwise function of a raw state dict (default embedded_gaussian).")
    ] = None,
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
        "best metric": "-" if summary["best_metric"] is None else f"{summary['best_metric']} ({summary['metric_name']})",
        "training config": json.dumps(summary["training_config"]) if summary["training_config"] else "-",
    }
    width = max(map(len, rows))
    for key, value in rows.items():
        typer.echo(f"{key:<{width}}  {value}")


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the report and the files the demo writes.")] = Path(
        "nltool-demo"
    ),
) -> None:
    """Run the built-in demo on synthetic input and write a report (no dataset or GPU needed)."""
    from nltool.demo import PENDING_STAGES, run_demo

    report = run_demo(out, progress=lambda msg: typer.echo(f"[demo] {msg}", err=True))
    for row in report.rows:
        mark = "ok" if row.matches_paper else "MISMATCH"
        typer.echo(f"{row.arch:<13} {row.parameters / 1e6:.3f}M params (paper {row.paper_params_m:.3f}M, {mark}), "
                   f"logits {'×'.join(map(str, row.output_shape))} in {row.forward_seconds:.2f}s")
    typer.echo(f"checkpoint round trip: {'identical' if report.roundtrip_identical else 'DIFFERENT'} ({report.checkpoint})")
    typer.echo(f"not in this build yet: {', '.join(PENDING_STAGES)}")
    typer.echo(f"report: {report.report_md}")
    if not report.roundtrip_identical or not all(r.matches_paper for r in report.rows):
        raise typer.Exit(1)


# Commands of DESIGN.md whose stage has not landed: listed so --help shows the whole CLI, and
# refusing to run rather than pretending. Each entry: (typer app, name, help, issue number).
_PENDING: tuple[tuple[typer.Typer, str, str, int], ...] = (
    (data_app, "synth", "Write synthetic DeepGlobe-layout road scenes.", 3),
    (app, "train", "Train a model on DeepGlobe-layout data.", 3),
    (app, "evaluate", "Score a model on labelled data (DeepGlobe road IoU).", 3),
    (app, "predict", "Write road masks for images of any size.", 4),
    (app, "export", "Export a checkpoint to ONNX / INT8 / TensorRT with a parity report.", 5),
    (app, "package", "Package a model as a TorchServe archive and config.", 6),
    (app, "client", "Request a road mask from a running TorchServe (REST or gRPC).", 6),
)


def _add_pending(parent: typer.Typer, name: str, summary: str, issue: int) -> None:
    @parent.command(
        name,
        help=f"{summary} Not in this build yet (issue #{issue}).",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )
    def _pending() -> None:
        typer.echo(f"error: 'nltool {name}' is not in this build of nltool yet (issue #{issue}).", err=True)
        raise typer.Exit(2)


for _parent, _name, _summary, _issue in _PENDING:
    _add_pending(_parent, _name, _summary, _issue)


def main() -> None:
    """Console-script entry point: user errors print one line, not a traceback."""
    try:
        app()
    except NltoolError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(1)
