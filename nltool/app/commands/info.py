"""``nltool info`` (a checkpoint's metadata) and ``nltool demo`` (the whole product on synthetic roads)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from nltool.app.commands.options import ArchOpt, PairwiseOption
from nltool.devices import AUTO_DEVICE


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


def demo(
    out: Annotated[Path, typer.Option(help="Folder for the data, run, artifacts, archive, figures and report.")] = Path(
        "nltool-demo"),
    quick: Annotated[bool, typer.Option(help="A shortened run (tiny data, a few steps) that still goes through "
                                             "every stage; about two minutes, what the tests run.")] = False,
    force: Annotated[bool, typer.Option(help="Replace an earlier demo's folder at --out (only one the demo "
                                             "wrote).")] = False,
    device: Annotated[str, typer.Option(help="Training/evaluation device: auto (CUDA if present), cpu, cuda, "
                                             "cuda:N.")] = AUTO_DEVICE,
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
