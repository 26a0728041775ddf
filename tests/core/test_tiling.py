"""Tile grids: full coverage on the network's 32-px grid, and blending weights that sum to 1."""

from __future__ import annotations

import numpy as np
import pytest

from nltool.errors import InferenceConfigError
from nltool.inference import PipelineConfig
from nltool.inference.tiling import TileGrid


def normalized_weights(grid: TileGrid) -> np.ndarray:
    """tiles × H × W: each tile's weight divided by the per-pixel total, as the pipeline blends."""
    rows, cols = grid.rows, grid.cols
    canvases = []
    for r, y in enumerate(rows.starts):
        for c, x in enumerate(cols.starts):
            canvas = np.zeros((rows.padded_length, cols.padded_length))
            canvas[y:y + rows.tile_length, x:x + cols.tile_length] = grid.tile_weights(r, c)
            canvases.append(canvas)
    stack = np.stack(canvases)
    return (stack / stack.sum(0))[:, : grid.height, : grid.width]


@pytest.mark.parametrize("size", [(2500, 1900), (1024, 1024), (1025, 3000), (33, 47), (700, 64)])
def test_tiles_cover_the_image_on_the_32px_grid(size: tuple[int, int]) -> None:
    grid = TileGrid(*size, tile=1024, overlap=128)
    for axis, length in ((grid.rows, size[0]), (grid.cols, size[1])):
        assert axis.padded_length % 32 == 0 and 0 <= axis.padded_length - length < 32
        assert all(start % 32 == 0 for start in axis.starts)
        assert axis.starts[0] == 0 and axis.starts[-1] + axis.tile_length == axis.padded_length
        gaps = np.diff(axis.starts)
        assert (gaps > 0).all() and (gaps <= axis.tile_length - 128).all(), "overlap at least the requested"


def test_small_image_is_one_padded_tile() -> None:
    grid = TileGrid(200, 300, tile=1024, overlap=128)
    assert grid.num_tiles == 1
    assert (grid.rows.tile_length, grid.cols.tile_length) == (224, 320)


@pytest.mark.parametrize("size,tile,overlap", [((2500, 1900), 1024, 128), ((600, 700), 256, 64), ((300, 300), 128, 0)])
def test_blending_weights_sum_to_one_everywhere(size: tuple[int, int], tile: int, overlap: int) -> None:
    weights = normalized_weights(TileGrid(*size, tile=tile, overlap=overlap))
    assert weights.shape[1:] == size
    np.testing.assert_allclose(weights.sum(0), 1.0, atol=1e-12)
    assert (weights >= 0).all()


def test_blending_ramps_are_smooth_across_a_seam() -> None:
    """Inside an overlap the weight of the left tile falls monotonically from ~1 to ~0."""
    grid = TileGrid(64, 2000, tile=1024, overlap=128)
    left = normalized_weights(grid)[0, 0]
    second = grid.cols.starts[1]
    ramp = left[second:second + 128]
    assert ramp[0] > 0.99 and ramp[-1] < 0.01
    assert (np.diff(ramp) <= 0).all()


@pytest.mark.parametrize("kwargs,message", [
    ({"tile": 1000}, "multiple of 32"),
    ({"overlap": 600}, "half the tile"),
    ({"tta": "d8"}, "tta must be one of none, flip, d4"),
    ({"scales": (0.1,)}, "scales must be between"),
    ({"threshold": 1.5}, "threshold must be in"),
    ({"batch_size": 0}, "batch size"),
])
def test_bad_settings_are_named(kwargs: dict, message: str) -> None:
    with pytest.raises(InferenceConfigError, match=message):
        PipelineConfig(**kwargs)
