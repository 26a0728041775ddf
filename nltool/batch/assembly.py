"""The driver's side of a distributed run: strips of a scene arrive in any order and are blended,
in order, into the scene's output file, which is renamed into place only when complete."""

from __future__ import annotations

import contextlib

import numpy as np

from nltool.errors import NltoolError
from nltool.fileio import atomic_path
from nltool.imagery import ImageHeader, MaskWriter
from nltool.inference.config import OutputFormat, PipelineConfig
from nltool.inference.jobs import PredictJob, PredictResult
from nltool.inference.pipeline import StripBlender
from nltool.inference.tiling import TileGrid


class SceneAssembly:
    """One scene being written: a :class:`StripBlender` feeding a :class:`MaskWriter` on a
    temporary file beside the output. Strips that arrive early wait until those above them came."""

    def __init__(self, job: PredictJob, header: ImageHeader, config: PipelineConfig, fmt: OutputFormat) -> None:
        self.job, self.header = job, header
        self.grid = TileGrid(header.height, header.width, config.tile, config.overlap)
        self.seconds = 0.0
        """Seconds the actors spent on this scene's strips."""
        self._files = contextlib.ExitStack()
        tmp = self._files.enter_context(atomic_path(job.output))
        try:
            self.writer = MaskWriter(tmp, fmt, config.threshold, header.height, header.width, header.georef)
        except BaseException:
            self._files.close()
            raise
        self._blender = StripBlender(self.grid, self.writer)
        self._waiting: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}

    @property
    def num_strips(self) -> int:
        """How many strips (grid rows) make the scene."""
        return len(self.grid.rows.starts)

    def add(self, row: int, row_sum: np.ndarray, valid: np.ndarray | None, seconds: float = 0.0) -> bool:
        """Take strip ``row`` (which took ``seconds`` to predict); blend every strip that is now next
        in line. True once all are in."""
        self.seconds += seconds
        self._waiting[row] = (row_sum, valid)
        while self._blender.next_row in self._waiting:
            self._blender.add(*self._waiting.pop(self._blender.next_row))
        return self._blender.done

    def finish(self) -> PredictResult:
        """Finish the file and rename it onto the output."""
        self.writer.close()
        self._files.close()
        return PredictResult(output=self.job.output, width=self.header.width, height=self.header.height,
                             road_fraction=self.writer.road_fraction, seconds=self.seconds)

    def abort(self, reason: str) -> None:
        """Give the scene up: release and remove the temporary file; the output is left as it was."""
        self._waiting.clear()
        self.writer.discard()
        error = NltoolError(reason)
        self._files.__exit__(type(error), error, None)
