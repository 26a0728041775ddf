"""The vectorizer's product: centre lines with length and width, junctions and dead ends, as GeoJSON.

GeoJSON follows RFC 7946: coordinates are WGS 84 longitude/latitude for a georeferenced raster.
A raster without georeferencing keeps pixel coordinates (x = column, y = row, down), and says so
in the collection's ``nltool`` member (a foreign member, which RFC 7946 allows).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nltool.optional import require
from nltool.vectors.frame import RasterFrame
from nltool.vectors.pixelgraph import length_m
from nltool.vectors.settings import VectorizeSettings

WGS84_DECIMALS = 7
"""Longitude/latitude decimals written (1e-7 degree is about 1 cm)."""
PIXEL_DECIMALS = 3


@dataclass(frozen=True)
class RoadEdge:
    """One centre line between two nodes: pixel polyline, length and estimated width in metres."""

    xy: np.ndarray
    start: int
    end: int
    length_m: float
    width_m: float | None


@dataclass(frozen=True)
class RoadNode:
    """A junction (degree >= 3), a dead end (degree 1) or a point on a ring (degree 2), in pixels."""

    xy: np.ndarray
    degree: int

    @property
    def kind(self) -> str:
        """``junction``, ``end`` or ``ring``."""
        return "junction" if self.degree >= 3 else "end" if self.degree == 1 else "ring"


@dataclass
class RoadNetwork:
    """A road network over one raster, in the raster's pixel coordinates plus its frame."""

    frame: RasterFrame
    settings: VectorizeSettings
    edges: list[RoadEdge] = field(default_factory=list)
    nodes: list[RoadNode] = field(default_factory=list)

    @property
    def total_length_m(self) -> float:
        """Sum of the centre lines' lengths."""
        return float(sum(edge.length_m for edge in self.edges))

    @property
    def junctions(self) -> int:
        """Number of nodes where three or more lines meet."""
        return sum(node.kind == "junction" for node in self.nodes)

    def summary(self) -> dict[str, Any]:
        """Counts and total length, for the CLI and reports."""
        return {"edges": len(self.edges), "junctions": self.junctions,
                "dead_ends": sum(node.kind == "end" for node in self.nodes),
                "total_length_m": round(self.total_length_m, 3),
                "coordinates": "map" if self.frame.georeferenced else "pixel"}

    def map_lines(self) -> list[np.ndarray]:
        """Each centre line in the raster's map coordinates (pixel coordinates without georeferencing)."""
        return [self.frame.to_map(edge.xy) for edge in self.edges]

    def _output_coordinates(self, xy: np.ndarray) -> list[list[float]]:
        """Pixel coordinates as GeoJSON positions: WGS 84 when georeferenced, else pixels."""
        if self.frame.georeferenced:
            return np.round(self.frame.to_wgs84(self.frame.to_map(xy)), WGS84_DECIMALS).tolist()
        return np.round(xy, PIXEL_DECIMALS).tolist()

    def to_geojson(self, *, nodes: bool = True) -> dict[str, Any]:
        """An RFC 7946 FeatureCollection of LineStrings (layer ``roads``) and, if asked, Points (``nodes``)."""
        features = [{"type": "Feature", "id": i,
                     "properties": {"layer": "roads", "length_m": round(edge.length_m, 3),
                                    "width_m": None if edge.width_m is None else round(edge.width_m, 2),
                                    "start_node": edge.start, "end_node": edge.end},
                     "geometry": {"type": "LineString", "coordinates": self._output_coordinates(edge.xy)}}
                    for i, edge in enumerate(self.edges)]
        if nodes:
            for i, node in enumerate(self.nodes):
                position = self._output_coordinates(node.xy[None])[0]
                features.append({"type": "Feature", "id": f"node-{i}",
                                 "properties": {"layer": "nodes", "node": i, "degree": node.degree,
                                                "kind": node.kind},
                                 "geometry": {"type": "Point", "coordinates": position}})
        return {"type": "FeatureCollection", "features": features,
                "nltool": {**self.frame.describe(), **self.summary(), "settings": self.settings.to_dict()}}


def network_from_graph(graph: Any, frame: RasterFrame, settings: VectorizeSettings) -> RoadNetwork:
    """Simplify each edge of a cleaned pixel graph (Douglas-Peucker, ends kept) into a :class:`RoadNetwork`."""
    shapely = require("shapely", "road network vectorization")
    scale = frame.pixel_scale()
    tolerance = scale.pixels(settings.simplify_m)
    index = {node: i for i, node in enumerate(sorted(graph.nodes, key=lambda n: tuple(graph.nodes[n]["xy"])))}
    nodes = [RoadNode(graph.nodes[n]["xy"], graph.degree(n)) for n in sorted(index, key=index.__getitem__)]
    edges = []
    for u, v, data in graph.edges(data=True):
        start, end = (u, v) if data["start"] == u else (v, u)
        line = shapely.simplify(shapely.LineString(data["xy"]), tolerance, preserve_topology=False)
        xy = np.asarray(line.coords) if not line.is_empty and len(line.coords) >= 2 else data["xy"][[0, -1]]
        samples = data["dt"][np.isfinite(data["dt"])]
        width = (2 * float(np.median(samples)) - 1) * scale.mean if samples.size else None
        edges.append(RoadEdge(xy, index[start], index[end], length_m(xy, scale),
                              None if width is None else max(width, scale.mean)))
    edges.sort(key=lambda e: (e.start, e.end, tuple(e.xy[len(e.xy) // 2])))
    return RoadNetwork(frame, settings, edges, nodes)
