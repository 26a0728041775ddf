"""Tile grids over images of any size, and the smooth weights that blend overlapping tiles.

Each axis is reflect-padded up to a multiple of 32 (and an image smaller than a tile becomes one
tile of that padded size). Tiles start at 0, stride, 2·stride, ... with the last one ending at the
padded end; the stride is rounded down to a multiple of 32, so every tile sits on the network's
own 32-pixel grid and sees exactly what a whole-image pass would see there. Overlapping
predictions are averaged with weights that ramp as sin² over the overlap, so no seams show.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from nltool.models.archs import SIZE_MULTIPLE


def round_up(value: int, multiple: int = SIZE_MULTIPLE) -> int:
    """Smallest multiple of ``multiple`` that is >= ``value``."""
    return -(-value // multiple) * multiple


@dataclass(frozen=True)
class AxisTiling:
    """Tile starts and tile length along one axis of ``length`` pixels."""

    length: int
    tile: int
    overlap: int

    @cached_property
    def tile_length(self) -> int:
        """The tile side actually used: ``tile``, or the padded image side if that is smaller."""
        return min(self.tile, round_up(self.length))

    @cached_property
    def padded_length(self) -> int:
        """The axis length after reflect-padding to a multiple of 32."""
        return round_up(self.length)

    @cached_property
    def starts(self) -> tuple[int, ...]:
        """Tile start offsets, all multiples of 32; the last tile ends exactly at the padded end."""
        last = self.padded_length - self.tile_length
        stride = max(SIZE_MULTIPLE, (self.tile_length - self.overlap) // SIZE_MULTIPLE * SIZE_MULTIPLE)
        return (*range(0, last, stride), last)

    def weights(self, index: int) -> np.ndarray:
        """1-D blending weights of tile ``index``: 1 inside, sin² ramps where a neighbour overlaps.

        Ramps are strictly positive, so every pixel has a positive total weight.
        """
        n, start = self.tile_length, self.starts[index]
        w = np.ones(n, dtype=np.float64)
        ramp_len = min(self.overlap, n // 2)
        if ramp_len:
            ramp = np.sin(0.5 * math.pi * (np.arange(ramp_len) + 0.5) / ramp_len) ** 2
            if start > 0:
                w[:ramp_len] = ramp
            if start + n < self.padded_length:
                w[n - ramp_len:] = ramp[::-1]
        return w


@dataclass(frozen=True)
class TileGrid:
    """The tiles covering an H×W image: rows of tiles, each row a horizontal strip."""

    height: int
    width: int
    tile: int
    overlap: int

    @cached_property
    def rows(self) -> AxisTiling:
        """Tiling of the vertical axis."""
        return AxisTiling(self.height, self.tile, self.overlap)

    @cached_property
    def cols(self) -> AxisTiling:
        """Tiling of the horizontal axis."""
        return AxisTiling(self.width, self.tile, self.overlap)

    @property
    def num_tiles(self) -> int:
        """Total number of tiles (before test-time augmentation)."""
        return len(self.rows.starts) * len(self.cols.starts)

    def tile_weights(self, row: int, col: int) -> np.ndarray:
        """2-D blending weights (float32) of the tile at grid position (row, col)."""
        return np.outer(self.rows.weights(row), self.cols.weights(col)).astype(np.float32)

    def row_weights(self, row: int) -> np.ndarray:
        """Sum of the blending weights of grid row ``row``'s tiles, placed at their columns
        (tile height × padded width, float32): what a strip's weighted tile sum is divided by."""
        tile_w = self.cols.tile_length
        total = np.zeros((self.rows.tile_length, self.cols.padded_length), dtype=np.float32)
        for col, x in enumerate(self.cols.starts):
            total[:, x:x + tile_w] += self.tile_weights(row, col)
        return total
