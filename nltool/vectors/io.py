"""Writing road networks (GeoJSON in WGS 84, GeoPackage in the raster's CRS) and reading road lines back.

Both writers go through :func:`nltool.fileio.atomic_path`, so a crash never leaves half a file.
GeoPackage holds two layers, ``roads`` and (optionally) ``nodes``, written with pyogrio.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nltool.errors import VectorError
from nltool.fileio import atomic_path
from nltool.optional import require
from nltool.vectors.frame import WGS84
from nltool.vectors.network import RoadNetwork

VECTOR_FORMATS = {".geojson": "geojson", ".json": "geojson", ".gpkg": "gpkg"}


def vector_format(path: Path) -> str:
    """``geojson`` or ``gpkg`` from a file name; anything else is an error naming the choices."""
    fmt = VECTOR_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise VectorError(f"cannot tell the network format of {path}: name it .geojson or .gpkg")
    return fmt


def write_network(network: RoadNetwork, path: Path, *, nodes: bool = True) -> Path:
    """Write ``network`` to ``path`` (.geojson or .gpkg, with the nodes layer unless ``nodes=False``)."""
    path = Path(path)
    fmt = vector_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        if fmt == "geojson":
            tmp.write_text(json.dumps(network.to_geojson(nodes=nodes)))
        else:
            _write_gpkg(network, tmp, nodes)
    return path


def _write_gpkg(network: RoadNetwork, path: Path, nodes: bool) -> None:
    """Layers ``roads`` (LineString, length_m, width_m, start/end node) and ``nodes`` in the raster's CRS."""
    shapely = require("shapely", "writing GeoPackage road networks")
    write = require("pyogrio.raw", "writing GeoPackage road networks").write
    crs = network.frame.crs_wkt if network.frame.georeferenced else None
    path.unlink(missing_ok=True)
    lines = shapely.to_wkb(np.array([shapely.LineString(xy) for xy in network.map_lines()], dtype=object))
    fields = {"length_m": np.array([e.length_m for e in network.edges], np.float64),
              "width_m": np.array([np.nan if e.width_m is None else e.width_m for e in network.edges], np.float64),
              "start_node": np.array([e.start for e in network.edges], np.int64),
              "end_node": np.array([e.end for e in network.edges], np.int64)}
    layers = [("roads", "LineString", lines, fields)]
    if nodes:
        points = network.frame.to_map(np.array([n.xy for n in network.nodes]).reshape(-1, 2))
        layers.append(("nodes", "Point", shapely.to_wkb(shapely.points(points)),
                       {"degree": np.array([n.degree for n in network.nodes], np.int64),
                        "kind": np.array([n.kind for n in network.nodes], dtype=object)}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # GDAL notes the temporary file's extension
        for layer, geometry_type, geometries, columns in layers:
            write(str(path), geometries, list(columns.values()), fields=list(columns), layer=layer, driver="GPKG",
                  geometry_type=geometry_type, crs=crs)


@dataclass(frozen=True)
class RoadLines:
    """Road centre lines read from a file: coordinates, and their CRS (None with ``pixel_size_m``: pixels)."""

    lines: list[np.ndarray]
    crs: Any = None
    pixel_size_m: tuple[float, float] | None = None


def read_lines(path: Path) -> RoadLines:
    """The LineStrings (and MultiLineStrings) of a GeoJSON or GeoPackage file, in the file's CRS.

    GeoJSON is WGS 84 (RFC 7946) unless it carries a legacy ``crs`` member naming another CRS, or
    nltool's ``nltool.coordinates == "pixel"`` member (then coordinates are pixels of the stated size).
    """
    path = Path(path)
    if not path.is_file():
        raise VectorError(f"road network file not found: {path}")
    fmt = vector_format(path)
    lines, crs, pixel = _read_gpkg(path) if fmt == "gpkg" else _read_geojson(path)
    if not lines:
        raise VectorError(f"{path} holds no LineString or MultiLineString features: a road network is made of "
                          "centre lines")
    return RoadLines(lines, crs, pixel)


def _read_geojson(path: Path) -> tuple[list[np.ndarray], Any, tuple[float, float] | None]:
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise VectorError(f"{path} is not valid GeoJSON ({exc})") from exc
    features = data.get("features", [data]) if isinstance(data, dict) else []
    lines: list[np.ndarray] = []
    for feature in features:
        geometry = feature.get("geometry") if isinstance(feature, dict) and "geometry" in feature else feature
        if not isinstance(geometry, dict):
            continue
        if geometry.get("type") == "LineString":
            lines.append(np.asarray(geometry["coordinates"], np.float64)[:, :2])
        elif geometry.get("type") == "MultiLineString":
            lines.extend(np.asarray(part, np.float64)[:, :2] for part in geometry["coordinates"])
    lines = [line for line in lines if len(line) >= 2]
    meta = data.get("nltool", {}) if isinstance(data, dict) else {}
    if meta.get("coordinates") == "pixel":
        sx, sy = meta.get("pixel_size_m", [1.0, 1.0])
        return lines, None, (float(sx), float(sy))
    legacy = ((data.get("crs") or {}).get("properties") or {}).get("name") if isinstance(data, dict) else None
    return lines, legacy or WGS84, None


def _read_gpkg(path: Path) -> tuple[list[np.ndarray], Any, tuple[float, float] | None]:
    shapely = require("shapely", "reading GeoPackage road networks")
    read = require("pyogrio.raw", "reading GeoPackage road networks").read
    layers = require("pyogrio", "reading GeoPackage road networks").list_layers(str(path))
    lines: list[np.ndarray] = []
    crs = None
    for name, geometry_type in layers:
        if geometry_type not in ("LineString", "MultiLineString"):
            continue
        meta, _, geometries, _ = read(str(path), layer=name)
        crs = crs or meta.get("crs")
        for geometry in shapely.from_wkb(geometries):
            parts = getattr(geometry, "geoms", [geometry])
            lines.extend(np.asarray(part.coords)[:, :2] for part in parts if len(part.coords) >= 2)
    return lines, crs, None if crs else (1.0, 1.0)
