"""Where a raster's pixels are: pixel coordinates to map coordinates, to WGS 84, and metres per pixel.

Pixel coordinates are continuous (x = column, y = row) with (0, 0) at the top-left corner of the
top-left pixel, so the centre of pixel (row r, column c) is (c + 0.5, r + 0.5), as GDAL counts.
A raster without georeferencing (plain PNG/JPEG) keeps pixel coordinates and an assumed pixel size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from nltool.errors import VectorError
from nltool.optional import require
from nltool.vectors.settings import DEFAULT_PIXEL_SIZE_M, PixelScale

WGS84 = "EPSG:4326"


def _pyproj() -> Any:
    return require("pyproj", "road network coordinates")


@dataclass(frozen=True)
class RasterFrame:
    """A raster's size, affine transform (GDAL order a, b, c, d, e, f) and CRS (WKT), or none of them."""

    width: int
    height: int
    transform: tuple[float, float, float, float, float, float] | None = None
    crs_wkt: str | None = None
    assumed_pixel_size_m: float = DEFAULT_PIXEL_SIZE_M

    @classmethod
    def from_georeference(cls, width: int, height: int, georef: Any,
                          assumed_pixel_size_m: float = DEFAULT_PIXEL_SIZE_M) -> RasterFrame:
        """The frame of an image read by :func:`nltool.imagery.open_image` (``georef`` None: pixels)."""
        if georef is None or georef.crs is None:
            return cls(width, height, assumed_pixel_size_m=assumed_pixel_size_m)
        t = georef.transform
        return cls(width, height, (t.a, t.b, t.c, t.d, t.e, t.f), georef.crs.to_wkt(), assumed_pixel_size_m)

    @property
    def georeferenced(self) -> bool:
        """Whether coordinates are map coordinates in a known CRS (else pixel coordinates)."""
        return self.transform is not None and self.crs_wkt is not None

    def crs(self) -> Any:
        """The pyproj CRS (georeferenced frames only)."""
        return _pyproj().CRS.from_user_input(self.crs_wkt)

    def to_map(self, xy: np.ndarray) -> np.ndarray:
        """N×2 pixel coordinates -> N×2 map coordinates (pixel coordinates unchanged without a transform)."""
        if self.transform is None:
            return np.asarray(xy, dtype=np.float64)
        a, b, c, d, e, f = self.transform
        x, y = xy[:, 0], xy[:, 1]
        return np.column_stack([a * x + b * y + c, d * x + e * y + f])

    def to_wgs84(self, xy_map: np.ndarray) -> np.ndarray:
        """N×2 map coordinates -> N×2 (longitude, latitude) in degrees."""
        transformer = _pyproj().Transformer.from_crs(self.crs(), WGS84, always_xy=True)
        lon, lat = transformer.transform(xy_map[:, 0], xy_map[:, 1])
        return np.column_stack([lon, lat])

    def pixel_scale(self) -> PixelScale:
        """Metres per pixel along x and y: from the transform and the CRS's unit (geodesic for degrees)."""
        if not self.georeferenced:
            return PixelScale(self.assumed_pixel_size_m, self.assumed_pixel_size_m)
        a, b, _, d, e, _ = self.transform  # type: ignore[misc]
        crs = self.crs()
        if crs.is_geographic:
            centre = self.to_map(np.array([[self.width / 2, self.height / 2]]))[0]
            geod = _pyproj().Geod(ellps="WGS84")
            lon, lat = centre
            sx = geod.inv(lon, lat, lon + a, lat + d)[2]
            sy = geod.inv(lon, lat, lon + b, lat + e)[2]
        else:
            unit = crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0
            sx, sy = math.hypot(a, d) * unit, math.hypot(b, e) * unit
        if not (sx > 0 and sy > 0):
            raise VectorError(f"the raster's transform {self.transform} has no pixel size")
        return PixelScale(sx, sy)

    def describe(self) -> dict[str, Any]:
        """What the coordinates of a network in this frame mean (written into its GeoJSON)."""
        scale = self.pixel_scale()
        if self.georeferenced:
            return {"coordinates": "map", "pixel_size_m": [scale.x, scale.y]}
        return {"coordinates": "pixel", "pixel_size_m": [scale.x, scale.y],
                "note": "no georeferencing: x = column, y = row (down) in pixels of the input, "
                        "lengths and widths in metres assume the stated pixel size"}


def utm_crs_for(lon: float, lat: float) -> Any:
    """The WGS 84 / UTM zone CRS containing (lon, lat): lengths in metres with little distortion."""
    zone = min(60, max(1, int((lon + 180) // 6) + 1))
    return _pyproj().CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)
