"""The one progress bar nltool shows on long work (predict, evaluate, synth, training), on stderr."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.progress import Progress


def progress_bar(text: str = "", *, remaining: bool = False) -> Progress:
    """A rich bar: the task's description, the bar, done/total, ``text`` (a unit, or a template over
    the task's fields), and the elapsed time (or, with ``remaining``, the time left)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    clock = TimeRemainingColumn() if remaining else TimeElapsedColumn()
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn(text), clock,
                    console=Console(stderr=True))
