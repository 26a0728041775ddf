"""The inference pipeline shared by ``predict``, ``evaluate`` and the TorchServe handler.

image -> strips of tiles -> batches -> TTA -> backend -> inverse TTA -> average -> blend -> crop
-> probability -> threshold. Images are processed one horizontal strip of tiles at a time and
finished rows are handed to a sink at once, so a scene larger than memory streams through with
memory bounded by one strip (tile height × image width).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

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


class InferencePipeline:
    """A backend plus a :class:`PipelineConfig`: turns any image into a probability map or a mask."""

    def __init__(self, backend: Backend, config: PipelineConfig | None = None) -> None:
        self.backend = backend
        self.config = config or PipelineConfig()

    def num_tiles(self, height: int, width: int) -> int:
        """How many tiles an image of this size takes (for progress bars)."""
        return TileGrid(height, width, self.config.tile, self.config.overlap).num_tiles

    def predict_tiles(self, tiles: torch.Tensor) -> torch.Tensor:
        """N×3×h×w RGB 0-255 tiles -> N×h×w probabilities, averaged over the configured TTA."""
        cfg = self.config
        return predict_with_tta(tiles, self.backend.run, cfg.tta, cfg.scales)[:, 0]

    def run(self, source: RasterSource, sink: ProbabilitySink,
            progress: Callable[[int], None] | None = None) -> None:
        """Stream ``source`` through the model into ``sink`` (rows top to bottom; nodata -> 0)."""
        height, width = source.height, source.width
        check_image_size(width, height, self.config.max_pixels)
        grid = TileGrid(height, width, self.config.tile, self.config.overlap)
        tile_h, tile_w = grid.rows.tile_length, grid.cols.tile_length
        padded_w = grid.cols.padded_length
        acc = np.zeros((tile_h, padded_w), dtype=np.float32)
        weight = np.zeros_like(acc)
        row_starts = grid.rows.starts
        for r, y in enumerate(row_starts):
            rgb, valid = source.read_rows(y, min(y + tile_h, height))
            strip = _pad_strip(np.asarray(rgb), tile_h, padded_w)
            num_cols, batch_size = len(grid.cols.starts), self.config.batch_size
            for first in range(0, num_cols, batch_size):
                batch = range(first, min(first + batch_size, num_cols))
                xs = [grid.cols.starts[c] for c in batch]
                tiles = np.stack([strip[:, x:x + tile_w] for x in xs])
                tensor = torch.from_numpy(tiles).permute(0, 3, 1, 2).float()
                probs = self.predict_tiles(tensor).numpy()
                for c, x, prob in zip(batch, xs, probs, strict=True):
                    w = grid.tile_weights(r, c)
                    acc[:, x:x + tile_w] += prob * w
                    weight[:, x:x + tile_w] += w
                if progress:
                    progress(len(batch))
            last = r == len(row_starts) - 1
            done = min(tile_h, height - y) if last else row_starts[r + 1] - y
            out = acc[:done, :width] / weight[:done, :width]
            done_valid = None if valid is None else valid[:done]
            if done_valid is not None:
                out = np.where(done_valid, out, np.float32(0.0))
            sink.write_rows(y, out, done_valid)
            if not last:  # keep the rows the next strip still overlaps, shifted to the top
                acc[: tile_h - done] = acc[done:]
                weight[: tile_h - done] = weight[done:]
                acc[tile_h - done:] = 0.0
                weight[tile_h - done:] = 0.0

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
