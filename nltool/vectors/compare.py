"""APLS between two road networks given as files: GeoJSON/GeoPackage in any CRS pyproj knows, or masks.

Masks and probability maps are vectorized first. Lines with a CRS are projected to the WGS 84 /
UTM zone of the truth's centre, so lengths are metres with little distortion; lines in pixel
coordinates (networks of plain PNGs) are scaled by their pixel size, and can only be compared with
other pixel-coordinate networks of the same image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from nltool.errors import VectorError
from nltool.optional import require
from nltool.vectors.apls import AplsResult, AplsSettings, apls, metric_graph
from nltool.vectors.frame import WGS84, utm_crs_for
from nltool.vectors.io import VECTOR_FORMATS, RoadLines, read_lines
from nltool.vectors.network import RoadNetwork
from nltool.vectors.settings import DEFAULT_PIXEL_SIZE_M, VectorizeSettings
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


def apls_between(truth: RoadLines, proposal: RoadLines, settings: AplsSettings | None = None) -> AplsResult:
    """APLS of two sets of road lines, both brought into metres in one frame."""
    if (truth.crs is None) != (proposal.crs is None):
        raise VectorError("one network is in pixel coordinates (no georeferencing) and the other in a map CRS: "
                          "compare georeferenced networks with each other, or both in pixels of the same image")
    target = None
    source = truth if truth.lines else proposal
    if source.crs is not None and source.lines:
        target = utm_crs_for(*_centre_lonlat(source))
    return apls(metric_graph(to_metres(truth, target)), metric_graph(to_metres(proposal, target)), settings)


def apls_files(truth: Path, proposal: Path, settings: AplsSettings | None = None,
               vectorize: VectorizeSettings | None = None, pixel_size_m: float = DEFAULT_PIXEL_SIZE_M) -> AplsResult:
    """``nltool apls``: load (or vectorize) both inputs and score the proposal against the truth."""
    return apls_between(load_lines(truth, vectorize, pixel_size_m), load_lines(proposal, vectorize, pixel_size_m),
                        settings)
