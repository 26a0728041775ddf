"""The vectorizer's entry points: a file, an in-memory probability map, or rows streamed from ``predict``.

probability -> threshold -> drop small blobs, fill small holes -> skeleton -> graph -> prune spurs
-> merge the junctions of one crossing -> straighten lines at the image's edge and extend dead ends
-> (strips merged) -> join aligned gaps -> drop short pieces -> simplify -> LineStrings with
``length_m`` and ``width_m``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nltool.vectors.frame import RasterFrame
from nltool.vectors.network import RoadNetwork
from nltool.vectors.raster import RoadRaster
from nltool.vectors.settings import DEFAULT_PIXEL_SIZE_M, VectorizeSettings
from nltool.vectors.strips import StripVectorizer


def vectorize_array(prob: np.ndarray, frame: RasterFrame | None = None, settings: VectorizeSettings | None = None,
                    strip_rows: int | None = None) -> RoadNetwork:
    """An H×W probability map (or boolean / 0-255 mask) in memory -> road network."""
    prob = np.asarray(prob)
    frame = frame or RasterFrame(prob.shape[1], prob.shape[0])
    if prob.dtype == np.uint8:
        prob = prob.astype(np.float32) / 255.0 if prob.max(initial=0) > 1 else prob.astype(np.float32)
    vectorizer = StripVectorizer(frame, settings, strip_rows)
    vectorizer.write_rows(0, prob.astype(np.float32, copy=False))
    return vectorizer.finish()


def vectorize_file(path: Path, settings: VectorizeSettings | None = None,
                   pixel_size_m: float = DEFAULT_PIXEL_SIZE_M) -> RoadNetwork:
    """A mask or probability raster on disk -> road network, read and vectorized strip by strip.

    GeoTIFFs keep their CRS and pixel size; PNG/JPEG get pixel coordinates with ``pixel_size_m``
    metres per pixel assumed for the thresholds, lengths and widths.
    """
    with RoadRaster(Path(path), pixel_size_m) as raster:
        vectorizer = StripVectorizer(raster.frame, settings)
        rows = vectorizer.strip_rows
        for y0 in range(0, raster.frame.height, rows):
            prob, valid = raster.read_rows(y0, min(y0 + rows, raster.frame.height))
            vectorizer.write_rows(y0, prob, valid)
        return vectorizer.finish()
