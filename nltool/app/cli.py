"""The ``nltool`` command line: the Typer app, assembled from the command modules.

Each command lives in :mod:`nltool.app.commands` (one module per command group: ``data``, ``train``
(train, evaluate), ``export``, ``inference`` (predict, vectorize, apls), ``serving`` (package, serve, client),
``info`` (info, demo)); shared option types are in :mod:`nltool.app.commands.options`. Stage packages
(training/, export/, serving/) are imported inside the commands that need them, so ``nltool --help``
stays fast and the core never depends on a stage.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from nltool import __version__
from nltool.app.commands import data, export, inference, info, serving, train
from nltool.errors import NltoolError


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
data_app.command("synth")(data.data_synth)
data_app.command("split")(data.data_split)
app.command()(info.info)
app.command()(info.demo)
app.command()(inference.predict)
app.command()(train.train)
app.command()(train.evaluate)
app.command()(inference.vectorize)
app.command("apls")(inference.apls_command)
app.command()(export.export)
app.command()(serving.package)
app.command()(serving.client)
app.command()(serving.serve)


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


def main() -> None:
    """Console-script entry point."""
    app()
