"""What a batch run did, shown as it happens (a bar per scene and one overall) and summed up at the
end (scenes written, skipped and failed; megapixels; seconds; MP/s)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nltool.inference.jobs import PredictJob, PredictResult
from nltool.progress import progress_bar

if TYPE_CHECKING:
    from rich.table import Table

MAX_EXIT_STATUS = 125
"""Exit statuses above this mean other things to a shell; more failures than this still exit 125."""


@dataclass(frozen=True)
class SceneFailure:
    """A scene that could not be predicted, and why."""

    input: Path
    message: str


@dataclass
class BatchReport:
    """Every scene of a run: written, skipped (already up to date) or failed."""

    written: list[PredictResult] = field(default_factory=list)
    skipped: list[PredictJob] = field(default_factory=list)
    failed: list[SceneFailure] = field(default_factory=list)
    seconds: float = 0.0
    """Wall-clock seconds of the whole run."""

    @property
    def megapixels(self) -> float:
        """Pixels written, in millions."""
        return sum(r.width * r.height for r in self.written) / 1e6

    @property
    def exit_status(self) -> int:
        """The number of failed scenes (0: all written or up to date), capped at 125."""
        return min(len(self.failed), MAX_EXIT_STATUS)

    def table(self, title: str) -> Table:
        """The summary as a rich table: scenes, pixels, seconds, MP/s."""
        from rich.table import Table

        table = Table(title=title)
        for column in ("scenes written", "up to date (skipped)", "failed", "megapixels", "seconds", "MP/s"):
            table.add_column(column, justify="right")
        rate = self.megapixels / self.seconds if self.seconds > 0 else 0.0
        table.add_row(str(len(self.written)), str(len(self.skipped)), str(len(self.failed)),
                      f"{self.megapixels:,.1f}", f"{self.seconds:,.1f}", f"{rate:,.2f}")
        return table


class BatchProgress:
    """A bar per scene being assembled (strips done) above one for the whole run (scenes done),
    on stderr; finished and failed scenes are printed as one line each."""

    def __init__(self, scenes: int, *, enabled: bool = True) -> None:
        self._progress = progress_bar("{task.fields[unit]}") if enabled else None
        self._overall: Any = None
        self._tasks: dict[Path, Any] = {}
        self._scenes = scenes

    def __enter__(self) -> BatchProgress:
        if self._progress is not None:
            self._progress.start()
            self._overall = self._progress.add_task("all scenes", total=self._scenes, unit="scenes")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def strip_done(self, job: PredictJob, strips: int) -> None:
        """One more strip of ``job`` (of ``strips``) arrived."""
        if self._progress is None:
            return
        if job.input not in self._tasks:
            self._tasks[job.input] = self._progress.add_task(job.input.name, total=strips, unit="strips")
        self._progress.advance(self._tasks[job.input])

    def scene_done(self, job: PredictJob, result: PredictResult) -> None:
        """``job`` was written."""
        self._end(job.input, f"{job.input} -> {result.output} ({result.width}×{result.height}, "
                       f"road {result.road_fraction:.1%}, {result.seconds:.1f}s on actors)")

    def scene_failed(self, failure: SceneFailure) -> None:
        """A scene failed; the others go on."""
        self._end(failure.input, f"FAILED {failure.input}: {failure.message}")

    def _end(self, scene: Path, line: str) -> None:
        if self._progress is None:
            return
        task = self._tasks.pop(scene, None)
        if task is not None:
            self._progress.remove_task(task)
        self._progress.advance(self._overall)
        self._progress.console.print(line)
