"""Reading a road mask or probability map to vectorize: PNG/JPEG through Pillow, (Geo)TIFF through rasterio.

What the pixel values mean is decided from the data, once:

- only 0 and one other value (0/1, 0/255, False/True): a binary mask, road where non-zero;
- 8-bit with other values: probability × 255 (nltool's ``--format prob`` PNG);
- floating point in [0, 1]: probability.

Anything else is refused with a message saying what was found. Multi-band images use band 1
(DeepGlobe's RGB masks repeat one band three times). GeoTIFF nodata is never road, and
GeoTIFFs are read by windows of rows, so a large scene streams.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from nltool.errors import VectorError
from nltool.imagery import probe_format, rasterio_module
from nltool.vectors.frame import RasterFrame
from nltool.vectors.settings import DEFAULT_PIXEL_SIZE_M

SCAN_ROWS = 1024


class RoadRaster:
    """A single-band road raster readable by rows as probability (binary masks as 0.0 / 1.0)."""

    def __init__(self, path: Path, pixel_size_m: float = DEFAULT_PIXEL_SIZE_M) -> None:
        """Open ``path`` and decide what its values mean (see the module docstring)."""
        self.path = Path(path)
        kind = probe_format(self.path)
        rasterio = rasterio_module()
        self._dataset: Any = None
        self._array: np.ndarray | None = None
        if kind == "TIFF" and rasterio is not None:
            try:
                self._dataset = rasterio.open(self.path)
            except Exception as exc:  # RasterioIOError and GDAL's CPLE_* errors
                raise VectorError(f"{self.path} is not a readable TIFF ({exc})") from exc
            ds = self._dataset
            georef = ds.crs is not None or not ds.transform.is_identity
            t = ds.transform
            self.frame = RasterFrame(ds.width, ds.height, (t.a, t.b, t.c, t.d, t.e, t.f) if georef else None,
                                     ds.crs.to_wkt() if georef and ds.crs is not None else None, pixel_size_m)
            self._has_nodata = any(flag.name != "all_valid" for flag in ds.mask_flag_enums[0])
        else:
            self._array = _pillow_band(self.path)
            height, width = self._array.shape
            self.frame = RasterFrame(width, height, assumed_pixel_size_m=pixel_size_m)
            self._has_nodata = False
        self.binary, self._scale = self._meaning()

    def _band_rows(self, y0: int, y1: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Raw values of rows ``y0:y1`` of band 1, and where they are valid (None: all)."""
        if self._array is not None:
            return self._array[y0:y1], None
        from rasterio.windows import Window

        window = Window(0, y0, self.frame.width, y1 - y0)
        values = self._dataset.read(1, window=window)
        valid = self._dataset.read_masks(1, window=window) > 0 if self._has_nodata else None
        return values, valid

    def _meaning(self) -> tuple[bool, float]:
        """(binary mask?, divisor to probability) from one pass over the values."""
        dtype = (self._array if self._array is not None else np.zeros(0, self._dataset.dtypes[0])).dtype
        nonzero: set[float] = set()  # distinct non-zero values, while there are at most two
        low, high = np.inf, -np.inf
        for y0 in range(0, self.frame.height, SCAN_ROWS):
            values, valid = self._band_rows(y0, min(y0 + SCAN_ROWS, self.frame.height))
            values = values if valid is None else values[valid]
            if values.size == 0:
                continue
            low, high = min(low, float(values.min())), max(high, float(values.max()))
            others = values[values != 0]
            if others.size and len(nonzero) <= 1:
                nonzero.update({float(others.min()), float(others.max())})
        if len(nonzero) <= 1 and low >= 0:
            return True, 1.0
        if dtype == np.uint8:
            return False, 255.0
        if np.issubdtype(dtype, np.floating) and low >= 0.0 and high <= 1.0:
            return False, 1.0
        raise VectorError(f"{self.path} holds {dtype} values from {low:g} to {high:g}: give a road mask (0 and one "
                          "other value), 8-bit probability (0-255) or floating-point probability (0-1)")

    def read_rows(self, y0: int, y1: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Rows ``y0:y1`` as float32 probability (binary masks: 0 or 1), and the valid mask (None: all)."""
        values, valid = self._band_rows(y0, y1)
        prob = (values != 0).astype(np.float32) if self.binary else values.astype(np.float32) / self._scale
        return prob, valid

    def close(self) -> None:
        """Release the file."""
        if self._dataset is not None:
            self._dataset.close()

    def __enter__(self) -> RoadRaster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _pillow_band(path: Path) -> np.ndarray:
    """Band 1 of a PNG/JPEG/plain TIFF as an array (8-bit, 16-bit, float or bool)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
            image.load()
    except (OSError, SyntaxError, ValueError) as exc:
        raise VectorError(f"{path} is not a readable image ({exc})") from exc
    array = np.asarray(image.convert("L") if image.mode == "P" else image)
    return array[..., 0] if array.ndim == 3 else array
