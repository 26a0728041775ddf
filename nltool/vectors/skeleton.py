"""One window of road pixels to a skeleton graph: clean the mask, thin it, trace it, prune, merge, extend.

Thinning is scikit-image's ``skeletonize``; tracing is sknw's ``build_sknw``, which returns a
NetworkX graph whose nodes are junction clusters and dead ends (each cluster of touching junction
pixels is one node at its centroid) and whose edges carry the skeleton pixels between them. A
window may be a strip of a larger raster: ``cut_top`` / ``cut_bottom`` say which of its borders
are cuts rather than the image's edge (small blobs reaching a cut are kept).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from nltool.errors import VectorError
from nltool.optional import require
from nltool.vectors.border import ImageEdges, PaddedMask, distance_to_box, remove_padding_branches, straighten_edge_ends
from nltool.vectors.junctions import merge_close_junctions
from nltool.vectors.meeting import place_junctions
from nltool.vectors.pixelgraph import clip_graph, end_direction, median_radius, oriented, prune_spurs
from nltool.vectors.settings import PixelScale, VectorizeSettings

SKNW_MAX_SIDE = 32767
"""sknw stores pixel coordinates as int16."""
SKNW_MAX_NODES = 65000
"""sknw labels node clusters in a uint16 image, from 10 upwards."""
BORDER_PAD_PX = 32
"""At least this many pixels of border are repeated around a window before thinning."""
RAY_STEP_PX = 0.25
"""Sampling step of the ray that finds where a dead end's road ends."""
ROUND_END_MIN_PX = 2.0
"""A road end narrower than this radius (pixels) is not tested for being rounded."""
ROUND_END_TOLERANCE_PX = 1.0
"""How far (pixels) the distance transform, sampled on the pixel grid, may fall short of the distance
to a rounded end's exit at the end's centre (it runs tangent to it there)."""


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
    """The window's skeleton graph in image pixel coordinates, cleaned: spurs pruned, junctions of one
    crossing merged, ends at the image's edge and dead ends straightened and extended.

    The mask is padded by repeating its border pixels before thinning, so a road that runs out of
    the window keeps going and its skeleton is not shortened at the border; the graph is then
    clipped back to the window, leaving cut ends (``cut=True``) where roads leave it, and what the
    padding made or bent at the image's edge is undone (:mod:`nltool.vectors.border`).
    """
    rows, width = window.road.shape
    if width > SKNW_MAX_SIDE:
        raise VectorError(f"a raster {width} pixels wide is wider than the {SKNW_MAX_SIDE} pixels the skeleton "
                          "tracer (sknw) can address; cut it into narrower pieces first")
    skeletonize = require("skimage.morphology", "road network vectorization").skeletonize
    ndi = require("scipy.ndimage", "road network vectorization")
    road = clean_mask(window, settings, scale)
    pad = max(BORDER_PAD_PX, math.ceil(scale.pixels(settings.spur_m)))
    padded = np.pad(road, pad, mode="edge")
    skeleton = skeletonize(padded)
    distance = ndi.distance_transform_edt(padded).astype(np.float32)
    traced = _trace(skeleton, distance, (pad, pad - window.y0))
    graph = clip_graph(traced, (0.0, float(window.y0), float(width), float(window.y0 + rows)),
                       lambda n: ("border", n))
    edges = ImageEdges(float(width), float(window.image_height), not window.cut_top, not window.cut_bottom)
    remove_padding_branches(graph, edges)
    prune_spurs(graph, settings, scale)
    merge_close_junctions(graph, settings, scale)
    mask = PaddedMask(padded, distance, (pad, pad - window.y0))
    place_junctions(graph, mask)
    straighten_edge_ends(graph, edges, mask)
    _extend_ends(graph, mask, width, window.image_height)
    return graph


def _trace(skeleton: np.ndarray, distance: np.ndarray, offset: tuple[int, int]) -> Any:
    """sknw's graph of the skeleton, as the MultiGraph described in :mod:`nltool.vectors.pixelgraph`,
    in image pixel coordinates (``offset``: the padded array's (column, row) of the image's origin)."""
    sknw = require("sknw", "road network vectorization")
    nx = require("networkx", "road network vectorization")
    _check_node_count(skeleton)
    traced = sknw.build_sknw(skeleton.astype(np.uint16), multi=True, iso=False, ring=True, full=False)
    shift = np.array([0.5 - offset[0], 0.5 - offset[1]])
    graph = nx.MultiGraph()
    pixels = {}
    for node, data in traced.nodes(data=True):
        row, col = data["o"]
        pixels[node] = np.asarray(data["pts"])
        graph.add_node(node, xy=np.array([col, row]) + shift, cut=False,
                       radius=float(distance[round(row), round(col)]))
    for u, v, data in traced.edges(data=True):
        pts = np.asarray(data["pts"], dtype=np.int64)
        if not _holds(pixels[u], pts[0]):
            u, v = v, u
        inner = pts[1:-1]
        xy = np.concatenate([graph.nodes[u]["xy"][None], inner[:, ::-1] + shift, graph.nodes[v]["xy"][None]])
        dt = np.concatenate([[graph.nodes[u]["radius"]], distance[inner[:, 0], inner[:, 1]],
                             [graph.nodes[v]["radius"]]])
        graph.add_edge(u, v, xy=xy, start=u, dt=dt.astype(np.float64))
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


def _extend_ends(graph: Any, mask: PaddedMask, width: int, height: int) -> None:
    """Straighten each dead end and put its end where the road's centre line ends: thinning bends the
    last half width of a skeleton towards a corner of the road's end and stops short of it. The bent
    tail (the last half width, the median distance transform along the line) is replaced by the
    straight continuation of the line before it, up to where the road ends along that ray
    (:func:`_road_end`) or the image does. Ends at a cut are left alone."""
    for node in list(graph.nodes):
        if graph.degree(node) != 1 or graph.nodes[node]["cut"] or graph.has_edge(node, node):
            continue
        (_, _, data), = graph.edges(node, data=True)
        xy, dt = oriented(data, node)
        radius = median_radius(dt)
        anchor, direction = end_direction(xy, radius)
        if radius <= 0.5 or not direction.any():
            continue
        tail = float(np.hypot(*np.diff(xy[:anchor + 1], axis=0).T).sum())
        end_radius = max(radius, float(graph.nodes[node].get("radius", 0.0)))
        box = distance_to_box(xy[anchor], direction, width, height)
        tip = xy[anchor] + direction * _road_end(mask, xy[anchor], direction, min(tail + 3 * end_radius, box), box)
        graph.nodes[node]["xy"] = tip
        data["xy"], data["dt"] = np.concatenate([tip[None], xy[anchor:]]), np.concatenate([[np.nan], dt[anchor:]])
        data["start"] = node


def _road_end(mask: PaddedMask, start: np.ndarray, direction: np.ndarray, limit: float, box: float) -> float:
    """Where a road's centre line ends along the ray from ``start`` (unit ``direction``), as a distance.

    The ray leaves the road at ``exit`` (sampled every ``RAY_STEP_PX`` up to ``limit``; the end is put
    halfway between the last road sample and the next). A square end is that exit. A rounded end
    (a round cap, a turning circle) ends at its circle's centre: the first point of the ray whose
    distance transform reaches the exit. The end is rounded when the points a quarter of that
    radius before the exit and three quarters of it to either side are off the road (they are inside a
    square end). Ends reaching ``box`` (the image's edge) are square.
    """
    steps = np.arange(0.0, limit, RAY_STEP_PX)
    points = start[None] + steps[:, None] * direction[None]
    on_road = mask.sample(points, mask.road).astype(bool)
    if on_road.all():
        return limit
    exit_ = max(0.0, float(steps[int(np.argmin(on_road))]) - RAY_STEP_PX / 2)
    if exit_ >= box - RAY_STEP_PX:
        return exit_
    before = steps <= exit_
    reached = np.flatnonzero(mask.sample(points[before], mask.distance) + ROUND_END_TOLERANCE_PX - 0.5
                             >= exit_ - steps[before])
    if not reached.size:
        return exit_
    centre = float(steps[reached[0]])
    radius = exit_ - centre
    if radius < ROUND_END_MIN_PX:
        return exit_
    normal = np.array([-direction[1], direction[0]])
    probe = start + (exit_ - radius / 4) * direction
    sides = np.stack([probe + 0.75 * radius * normal, probe - 0.75 * radius * normal])
    return centre if not mask.sample(sides, mask.road).all() else exit_
