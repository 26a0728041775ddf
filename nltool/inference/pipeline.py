"""The inference pipeline shared by ``predict``, ``evaluate`` and the TorchServe handler.

image -> strips of tiles -> batches -> TTA -> backend -> inverse TTA -> average -> blend -> crop
-> probability -> threshold. Images are processed one horizontal strip of tiles (a grid row) at a
time and finished rows are handed to a sink at once, so a scene larger than memory streams through
with memory bounded by one strip (tile height × image width). A strip's prediction
(:meth:`InferencePipeline.predict_strip`) and its blending (:class:`StripBlender`) are separate
steps, so the Ray engine can predict strips on many machines and blend them exactly as here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from nltool.imagery import check_image_size, threshold_mask
from nltool.inference.backends.base import Backend
from nltool.inference.config import PipelineConfig
from nltool.inference.tiling import TileGrid
from nltool.inference.tta import predict_with_tta


class RasterSource(Protocol):
    """An RGB image readable by rows: ``read_rows(y0, y1)`` -> (rows×W×3 uint8, rows×W valid mask or None)."""

    @property
    def height(self) -> int: ...

    @property
    def width(self) -> int: ...

    def read_rows(self, y0: int, y1: int) -> tuple[np.ndarray, np.ndarray | None]: ...


class ProbabilitySink(Protocol):
    """Receives finished rows of the probability map (nodata already 0) and their valid mask."""

    def write_rows(self, y0: int, prob: np.ndarray, valid: np.ndarray | None) -> None: ...


@dataclass
class ArraySource:
    """An in-memory H×W×3 uint8 image (with an optional H×W valid mask) as a :class:`RasterSource`."""

    rgb: np.ndarray
    valid: np.ndarray | None = None

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    def read_rows(self, y0: int, y1: int) -> tuple[np.ndarray, np.ndarray | None]:
        return self.rgb[y0:y1], None if self.valid is None else self.valid[y0:y1]


class ArraySink:
    """Collects the whole probability map in memory (H×W float32)."""

    def __init__(self, height: int, width: int) -> None:
        self.prob = np.zeros((height, width), dtype=np.float32)

    def write_rows(self, y0: int, prob: np.ndarray, valid: np.ndarray | None) -> None:
        self.prob[y0:y0 + prob.shape[0]] = prob


def _pad_strip(strip: np.ndarray, height: int, width: int) -> np.ndarray:
    """Reflect-pad a rows×W×3 strip at the bottom/right to height×width (images smaller than a tile)."""
    pad_h, pad_w = height - strip.shape[0], width - strip.shape[1]
    if pad_h == 0 and pad_w == 0:
        return strip
    if min(strip.shape[:2]) > 1:
        return np.pad(strip, ((0, pad_h), (0, pad_w), (0, 0)), mode="reflect")
    return np.pad(strip, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")


class StripBlender:
    """Blends grid rows of tiles top to bottom and hands every finished image row to a sink.

    The one blending code path: the local pipeline adds rows as it computes them, the Ray engine
    as its actors return them (in order), so both write byte-identical masks. Memory is one strip
    (tile height × padded width) of sums and weights.
    """

    def __init__(self, grid: TileGrid, sink: ProbabilitySink) -> None:
        self.grid, self.sink = grid, sink
        self._acc = np.zeros((grid.rows.tile_length, grid.cols.padded_length), dtype=np.float32)
        self._weight = np.zeros_like(self._acc)
        self.next_row = 0
        """The grid row :meth:`add` expects next."""

    @property
    def done(self) -> bool:
        """Whether every grid row was added (the sink has received the whole image)."""
        return self.next_row == len(self.grid.rows.starts)

    def add(self, row_sum: np.ndarray, valid: np.ndarray | None) -> None:
        """Add the next grid row (its weighted tile sum and valid mask, from
        :meth:`InferencePipeline.predict_strip`) and write the image rows no later tile reaches."""
        grid, r = self.grid, self.next_row
        starts, tile_h = grid.rows.starts, grid.rows.tile_length
        y, last = starts[r], r == len(starts) - 1
        self._acc += row_sum
        self._weight += grid.row_weights(r)
        done = min(tile_h, grid.height - y) if last else starts[r + 1] - y
        out = self._acc[:done, :grid.width] / self._weight[:done, :grid.width]
        done_valid = None if valid is None else valid[:done]
        if done_valid is not None:
            out = np.where(done_valid, out, np.float32(0.0))
        self.sink.write_rows(y, out, done_valid)
        if not last:  # keep the rows the next strip still overlaps, shifted to the top
            for array in (self._acc, self._weight):
                array[: tile_h - done] = array[done:]
                array[tile_h - done:] = 0.0
        self.next_row += 1


class InferencePipeline:
    """A backend plus a :class:`PipelineConfig`: turns any image into a probability map or a mask."""

    def __init__(self, backend: Backend, config: PipelineConfig | None = None) -> None:
        self.backend = backend
        self.config = config or PipelineConfig()

    def grid(self, height: int, width: int) -> TileGrid:
        """The tile grid this pipeline lays over an image of this size."""
        return TileGrid(height, width, self.config.tile, self.config.overlap)

    def num_tiles(self, height: int, width: int) -> int:
        """How many tiles an image of this size takes (for progress bars)."""
        return self.grid(height, width).num_tiles

    def predict_tiles(self, tiles: np.ndarray) -> np.ndarray:
        """float32 N×3×h×w RGB 0-255 tiles -> N×h×w probabilities, averaged over the configured TTA."""
        cfg = self.config
        return predict_with_tta(tiles, self.backend.run, cfg.tta, cfg.scales)[:, 0]

    def predict_strip(self, source: RasterSource, grid: TileGrid, row: int,
                      progress: Callable[[int], None] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Grid row ``row`` of ``source``: the sum of its tiles' probabilities times their blending
        weights (tile height × padded width, float32), and the valid mask of the rows it read."""
        tile_h, tile_w = grid.rows.tile_length, grid.cols.tile_length
        y = grid.rows.starts[row]
        rgb, valid = source.read_rows(y, min(y + tile_h, grid.height))
        strip = _pad_strip(np.asarray(rgb), tile_h, grid.cols.padded_length)
        row_sum = np.zeros((tile_h, grid.cols.padded_length), dtype=np.float32)
        num_cols, batch_size = len(grid.cols.starts), self.config.batch_size
        for first in range(0, num_cols, batch_size):
            batch = range(first, min(first + batch_size, num_cols))
            xs = [grid.cols.starts[c] for c in batch]
            tiles = np.stack([strip[:, x:x + tile_w] for x in xs]).transpose(0, 3, 1, 2).astype(np.float32)
            probs = self.predict_tiles(tiles)
            for c, x, prob in zip(batch, xs, probs, strict=True):
                row_sum[:, x:x + tile_w] += prob * grid.tile_weights(row, c)
            if progress:
                progress(len(batch))
        return row_sum, valid

    def run(self, source: RasterSource, sink: ProbabilitySink,
            progress: Callable[[int], None] | None = None) -> None:
        """Stream ``source`` through the model into ``sink`` (rows top to bottom; nodata -> 0)."""
        check_image_size(source.width, source.height, self.config.max_pixels)
        grid = self.grid(source.height, source.width)
        blender = StripBlender(grid, sink)
        for row in range(len(grid.rows.starts)):
            blender.add(*self.predict_strip(source, grid, row, progress))

    def predict_proba(self, rgb: np.ndarray, valid: np.ndarray | None = None,
                      progress: Callable[[int], None] | None = None) -> np.ndarray:
        """H×W×3 uint8 RGB in memory -> H×W float32 road probability."""
        source = ArraySource(rgb, valid)
        sink = ArraySink(source.height, source.width)
        self.run(source, sink, progress)
        return sink.prob

    def predict_mask(self, rgb: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
        """H×W×3 uint8 RGB in memory -> H×W uint8 mask (255 road, 0 background)."""
        return threshold_mask(self.predict_proba(rgb, valid), self.config.threshold)
