"""One window of road pixels to a skeleton graph: clean the mask, thin it, trace it, prune, extend.

Thinning is scikit-image's ``skeletonize``; tracing is sknw's ``build_sknw``, which returns a
NetworkX graph whose nodes are junction clusters and dead ends (each cluster of touching junction
pixels is one node at its centroid) and whose edges carry the skeleton pixels between them. A
window may be a strip of a larger raster: ``cut_top`` / ``cut_bottom`` say which of its borders
are cuts rather than the image's edge, and nothing touching a cut is treated as an end of a road.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from nltool.errors import VectorError
from nltool.optional import require
from nltool.vectors.pixelgraph import end_direction, oriented, prune_spurs
from nltool.vectors.settings import PixelScale, VectorizeSettings

SKNW_MAX_SIDE = 32767
"""sknw stores pixel coordinates as int16."""
SKNW_MAX_NODES = 65000
"""sknw labels node clusters in a uint16 image, from 10 upwards."""


@dataclass(frozen=True)
class Window:
    """Rows ``y0 .. y0 + len(road)`` of an image ``image_height`` rows tall, as a boolean road mask."""

    y0: int
    road: np.ndarray
    image_height: int
    cut_top: bool = False
    cut_bottom: bool = False


def clean_mask(window: Window, settings: VectorizeSettings, scale: PixelScale) -> np.ndarray:
    """Drop road blobs under ``min_object_m2`` (unless they reach a cut) and fill holes under ``max_hole_m2``."""
    ndi = require("scipy.ndimage", "road network vectorization")
    road = window.road
    labels, count = ndi.label(road, structure=np.ones((3, 3), bool))
    keep = np.bincount(labels.ravel(), minlength=count + 1) >= scale.area_pixels(settings.min_object_m2)
    for cut, row in ((window.cut_top, labels[0]), (window.cut_bottom, labels[-1])):
        if cut:
            keep[row] = True
    keep[0] = False
    road = keep[labels]
    holes, count = ndi.label(~road)
    fill = np.bincount(holes.ravel(), minlength=count + 1) < scale.area_pixels(settings.max_hole_m2)
    for border in (holes[0], holes[-1], holes[:, 0], holes[:, -1]):
        fill[border] = False  # background reaching a border is not a hole
    fill[0] = False
    return road | fill[holes]


def window_graph(window: Window, settings: VectorizeSettings, scale: PixelScale) -> Any:
    """The window's skeleton graph in image pixel coordinates, spurs pruned and dead ends extended."""
    width = window.road.shape[1]
    if width > SKNW_MAX_SIDE:
        raise VectorError(f"a raster {width} pixels wide is wider than the {SKNW_MAX_SIDE} pixels the skeleton "
                          "tracer (sknw) can address; cut it into narrower pieces first")
    skeletonize = require("skimage.morphology", "road network vectorization").skeletonize
    ndi = require("scipy.ndimage", "road network vectorization")
    road = clean_mask(window, settings, scale)
    skeleton = skeletonize(road)
    distance = ndi.distance_transform_edt(road).astype(np.float32)
    graph = _trace(skeleton, distance, window)
    prune_spurs(graph, settings, scale)
    _extend_ends(graph, distance, window, width)
    return graph


def _trace(skeleton: np.ndarray, distance: np.ndarray, window: Window) -> Any:
    """sknw's graph of the skeleton, as the MultiGraph described in :mod:`nltool.vectors.pixelgraph`."""
    sknw = require("sknw", "road network vectorization")
    nx = require("networkx", "road network vectorization")
    _check_node_count(skeleton)
    traced = sknw.build_sknw(skeleton.astype(np.uint16), multi=True, iso=False, ring=True, full=False)
    rows = skeleton.shape[0]
    graph = nx.MultiGraph()
    for node, data in traced.nodes(data=True):
        row, col = data["o"]
        pixels = np.asarray(data["pts"])
        reach = float(distance[round(row), round(col)]) + 2.0
        cut = (window.cut_top and pixels[:, 0].min() <= reach) or (window.cut_bottom and
                                                                    pixels[:, 0].max() >= rows - 1 - reach)
        graph.add_node(node, xy=np.array([col + 0.5, row + 0.5 + window.y0]), cut=bool(cut), pixels=pixels)
    for u, v, data in traced.edges(data=True):
        pts = np.asarray(data["pts"], dtype=np.int64)
        if not _holds(graph.nodes[u]["pixels"], pts[0]):
            u, v = v, u
        inner = pts[1:-1]
        xy = np.concatenate([graph.nodes[u]["xy"][None], inner[:, ::-1] + (0.5, 0.5 + window.y0),
                             graph.nodes[v]["xy"][None]])
        dt = np.concatenate([[_node_distance(graph, u, distance, window)], distance[inner[:, 0], inner[:, 1]],
                             [_node_distance(graph, v, distance, window)]])
        graph.add_edge(u, v, xy=xy, start=u, dt=dt.astype(np.float64))
    for node in graph.nodes:
        del graph.nodes[node]["pixels"]
    return graph


def _check_node_count(skeleton: np.ndarray) -> None:
    """Refuse skeletons with more possible node clusters than sknw's uint16 labels can count."""
    ndi = require("scipy.ndimage", "road network vectorization")
    neighbours = ndi.convolve(skeleton.astype(np.uint8), np.ones((3, 3), np.uint8), mode="constant") - 1
    candidates = int(np.count_nonzero(skeleton & (neighbours != 2)))
    if candidates > SKNW_MAX_NODES:
        raise VectorError(f"the road skeleton of this window has up to {candidates} junctions and ends, more than "
                          f"the skeleton tracer can label ({SKNW_MAX_NODES}): lower strip_rows, or clean the "
                          "probability map (a higher threshold, a larger min_object_m2)")


def _holds(pixels: np.ndarray, pixel: np.ndarray) -> bool:
    """Whether ``pixel`` (row, col) is one of a node cluster's pixels."""
    return bool((pixels == pixel).all(axis=1).any())


def _node_distance(graph: Any, node: Any, distance: np.ndarray, window: Window) -> float:
    """The distance transform at a node's centroid pixel."""
    x, y = graph.nodes[node]["xy"]
    return float(distance[int(y - 0.5 - window.y0), int(x - 0.5)])


def _extend_ends(graph: Any, distance: np.ndarray, window: Window, width: int) -> None:
    """Lengthen each dead end by the road's half width there, so a line reaches the road's end (thinning
    stops half a width short), clipped to the image; ends at a cut are left alone."""
    for node in list(graph.nodes):
        if graph.degree(node) != 1 or graph.nodes[node]["cut"] or graph.has_edge(node, node):
            continue
        (_, _, data), = graph.edges(node, data=True)
        xy, dt = oriented(data, node)
        reach = _node_distance(graph, node, distance, window) - 0.5
        if reach <= 0:
            continue
        tip = _clip_to_box(xy[0], end_direction(xy) * reach, width, window.image_height)
        graph.nodes[node]["xy"] = tip
        data["xy"], data["dt"], data["start"] = np.concatenate([tip[None], xy]), np.concatenate([[np.nan], dt]), node


def _clip_to_box(point: np.ndarray, step: np.ndarray, width: int, height: int) -> np.ndarray:
    """``point + step`` shortened so that it stays inside [0, width] × [0, height]."""
    scale = 1.0
    for axis, limit in ((0, width), (1, height)):
        if step[axis] > 0:
            scale = min(scale, (limit - point[axis]) / step[axis])
        elif step[axis] < 0:
            scale = min(scale, -point[axis] / step[axis])
    return point + step * max(0.0, scale)
