"""APLS between two road networks given as files: GeoJSON/GeoPackage in any CRS pyproj knows, or masks.

Masks and probability maps are vectorized first. SpaceNet's standard metric reads longitude/latitude
(as the reference reads GeoJSON): lines in another CRS are transformed to WGS 84, lines in pixel
coordinates (networks of plain PNGs) are scaled by their pixel size and placed at the central meridian
of UTM zone 31N (x + 500 000 m, northing 1 000 000 m - y), where UTM distorts least. nltool's variant
projects lines with a CRS to the WGS 84 / UTM zone of the truth's centre and scales pixel lines by their
size. Pixel-coordinate networks can only be compared with pixel-coordinate networks of the same image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from nltool.errors import VectorError
from nltool.optional import require
from nltool.vectors.apls import AplsResult, metric_graph, nltool_apls, standard_apls
from nltool.vectors.frame import WGS84, utm_crs_for
from nltool.vectors.io import VECTOR_FORMATS, RoadLines, read_lines
from nltool.vectors.network import RoadNetwork
from nltool.vectors.settings import DEFAULT_PIXEL_SIZE_M, AplsSettings, VectorizeSettings
from nltool.vectors.vectorize import vectorize_file


def network_lines(network: RoadNetwork) -> RoadLines:
    """A vectorized network's centre lines in its raster's map CRS (or pixels with their size)."""
    if network.frame.georeferenced:
        return RoadLines(network.map_lines(), network.frame.crs_wkt)
    scale = network.frame.pixel_scale()
    return RoadLines(network.map_lines(), None, (scale.x, scale.y))


def load_lines(path: Path, settings: VectorizeSettings | None = None,
               pixel_size_m: float = DEFAULT_PIXEL_SIZE_M) -> RoadLines:
    """Road lines from a .geojson/.gpkg file, or from a raster mask vectorized with ``settings``."""
    path = Path(path)
    if path.suffix.lower() in VECTOR_FORMATS:
        return read_lines(path)
    return network_lines(vectorize_file(path, settings, pixel_size_m))


def _centre_lonlat(lines: RoadLines) -> tuple[float, float]:
    pyproj = require("pyproj", "the APLS metric")
    points = np.concatenate(lines.lines)
    lo, hi = points.min(axis=0), points.max(axis=0)
    centre = (lo + hi) / 2
    transformer = pyproj.Transformer.from_crs(pyproj.CRS.from_user_input(lines.crs), WGS84, always_xy=True)
    return transformer.transform(centre[0], centre[1])


def to_metres(lines: RoadLines, target: Any) -> list[np.ndarray]:
    """The lines in metres: projected to ``target`` (a pyproj CRS) or, in pixels, scaled by their size."""
    if not lines.lines:
        return []
    if lines.crs is None:
        sx, sy = lines.pixel_size_m or (1.0, 1.0)
        return [line * (sx, sy) for line in lines.lines]
    pyproj = require("pyproj", "the APLS metric")
    transformer = pyproj.Transformer.from_crs(pyproj.CRS.from_user_input(lines.crs), target, always_xy=True)
    out = []
    for line in lines.lines:
        x, y = transformer.transform(line[:, 0], line[:, 1])
        out.append(np.column_stack([x, y]))
    return out


PIXEL_UTM = "EPSG:32631"
"""Pixel-coordinate networks are placed in this UTM zone for the standard metric ..."""
PIXEL_ORIGIN_M = (500000.0, 1000000.0)
"""... with pixel (0, 0) here (easting on the central meridian, rows going south)."""


def to_lonlat(lines: RoadLines) -> list[np.ndarray]:
    """The lines in WGS 84 longitude/latitude: as they are if already, else transformed (pixels: placed in
    UTM 31N after scaling by their size)."""
    if not lines.lines:
        return []
    pyproj = require("pyproj", "the APLS metric")
    if lines.crs is None:
        sx, sy = lines.pixel_size_m or (1.0, 1.0)
        source = pyproj.CRS.from_user_input(PIXEL_UTM)
        lines_xy = [np.column_stack([PIXEL_ORIGIN_M[0] + line[:, 0] * sx, PIXEL_ORIGIN_M[1] - line[:, 1] * sy])
                    for line in lines.lines]
    else:
        source = pyproj.CRS.from_user_input(lines.crs)
        if source.equals(pyproj.CRS.from_user_input(WGS84), ignore_axis_order=True):
            return [line[:, :2] for line in lines.lines]
        lines_xy = lines.lines
    transformer = pyproj.Transformer.from_crs(source, WGS84, always_xy=True)
    return [np.column_stack(transformer.transform(line[:, 0], line[:, 1])) for line in lines_xy]


def apls_between(truth: RoadLines, proposal: RoadLines, settings: AplsSettings | None = None) -> AplsResult:
    """APLS of two sets of road lines: SpaceNet's standard on them in lon/lat, or nltool's variant on them
    in metres (``settings.variant``)."""
    if (truth.crs is None) != (proposal.crs is None):
        raise VectorError("one network is in pixel coordinates (no georeferencing) and the other in a map CRS: "
                          "compare georeferenced networks with each other, or both in pixels of the same image")
    settings = settings or AplsSettings()
    if settings.standard:
        return standard_apls(to_lonlat(truth), to_lonlat(proposal), settings)
    target = None
    source = truth if truth.lines else proposal
    if source.crs is not None and source.lines:
        target = utm_crs_for(*_centre_lonlat(source))
    return nltool_apls(metric_graph(to_metres(truth, target)), metric_graph(to_metres(proposal, target)),
                       settings)


def apls_files(truth: Path, proposal: Path, settings: AplsSettings | None = None,
               vectorize: VectorizeSettings | None = None, pixel_size_m: float = DEFAULT_PIXEL_SIZE_M) -> AplsResult:
    """``nltool apls``: load (or vectorize) both inputs and score the proposal against the truth."""
    return apls_between(load_lines(truth, vectorize, pixel_size_m), load_lines(proposal, vectorize, pixel_size_m),
                        settings)
