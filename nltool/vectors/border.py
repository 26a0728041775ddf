"""Skeleton lines at the image's edge: drop what the border padding made, straighten what it bent.

Before thinning, the mask is padded by repeating its edge pixels, so roads run on past the image.
A skeleton point whose distance to the image's edge is less than its distance-transform value
(the road's half width there) has a maximal disk reaching past the edge: where it lies depends on
the padding, not on the road. A road leaving the image obliquely is bent towards the edge's
normal there, and the corners where a road meets the edge grow short branches. So branches from a
junction to the edge that lie wholly in that zone are removed, and the part of a line in that zone
is replaced by the straight continuation of the line before it, up to the edge.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from nltool.vectors.pixelgraph import DIRECTION_REACH_PX, merge_chains, oriented

EDGE_EPS_PX = 1e-6
"""A node this close to an image edge lies on it."""
CONTINUATION_STEP_PX = 0.5
"""Sampling step along a straight continuation checked against the mask."""


@dataclass(frozen=True)
class PaddedMask:
    """A window's road mask padded by repeating its border, and its distance transform; image pixel
    (col, row) is array element (row + offset[1], col + offset[0])."""

    road: np.ndarray
    distance: np.ndarray
    offset: tuple[int, int]

    def sample(self, points: np.ndarray, array: np.ndarray) -> np.ndarray:
        """``array`` (``road`` or ``distance``) at the pixels holding each of the N×2 image points (0 outside it)."""
        cols = np.floor(points[:, 0]).astype(np.int64) + self.offset[0]
        rows = np.floor(points[:, 1]).astype(np.int64) + self.offset[1]
        inside = (rows >= 0) & (rows < array.shape[0]) & (cols >= 0) & (cols < array.shape[1])
        values = np.zeros(len(points), array.dtype)
        values[inside] = array[rows[inside], cols[inside]]
        return values

    def on_road(self, start: np.ndarray, end: np.ndarray) -> bool:
        """Whether the segment from ``start`` to ``end`` runs on road pixels all the way."""
        steps = np.linspace(0.0, 1.0, max(2, int(np.hypot(*(end - start)) / CONTINUATION_STEP_PX) + 1))
        return bool(self.sample(start[None] + steps[:, None] * (end - start)[None], self.road).all())


@dataclass(frozen=True)
class ImageEdges:
    """The image's edges around a window of it: left and right always, top and bottom unless strip cuts."""

    width: float
    height: float
    top: bool
    bottom: bool

    def distance(self, xy: np.ndarray) -> np.ndarray:
        """Distance in pixels from each point of an N×2 array to the nearest image edge."""
        distance = np.minimum(xy[:, 0], self.width - xy[:, 0])
        if self.top:
            distance = np.minimum(distance, xy[:, 1])
        if self.bottom:
            distance = np.minimum(distance, self.height - xy[:, 1])
        return distance


def distance_to_box(point: np.ndarray, direction: np.ndarray, width: float, height: float) -> float:
    """How far a ray from ``point`` along the unit ``direction`` runs inside [0, width] × [0, height]."""
    reach = np.inf
    for axis, limit in ((0, width), (1, height)):
        if direction[axis] > 0:
            reach = min(reach, (limit - point[axis]) / direction[axis])
        elif direction[axis] < 0:
            reach = min(reach, -point[axis] / direction[axis])
    return max(0.0, float(reach))


def _padding_made(xy: np.ndarray, dt: np.ndarray, edges: ImageEdges) -> np.ndarray:
    """Which vertices of a line lie where the padding decides the skeleton (see the module docstring);
    vertices without a distance-transform sample (made by clipping) count as such."""
    return ~(np.isfinite(dt) & (edges.distance(xy) >= dt))


def _edge_ends(graph: Any, edges: ImageEdges) -> list[Any]:
    """Dead ends made by clipping the skeleton at the image's edge."""
    return [node for node in graph.nodes
            if graph.degree(node) == 1 and graph.nodes[node].get("cut")
            and edges.distance(graph.nodes[node]["xy"][None])[0] <= EDGE_EPS_PX]


def remove_padding_branches(graph: Any, edges: ImageEdges) -> int:
    """Remove branches to the image's edge from a junction the padding made, lying wholly where the padding
    decides the skeleton; returns how many."""
    doomed = []
    for node in _edge_ends(graph, edges):
        (_, other, key, data), = graph.edges(node, keys=True, data=True)
        junction = graph.nodes[other]
        if (graph.degree(other) >= 3 and edges.distance(junction["xy"][None])[0] < junction["radius"]
                and _padding_made(data["xy"], data["dt"], edges).all()):
            doomed.append((node, other, key))
    for node, other, key in doomed:
        if graph.has_edge(node, other, key) and graph.degree(other) >= 3:
            graph.remove_node(node)
    if doomed:
        merge_chains(graph)
    return len(doomed)


def straighten_edge_ends(graph: Any, edges: ImageEdges, mask: PaddedMask) -> int:
    """Replace the part of each line ending at the image's edge that the padding decided by the straight
    continuation of the line before it, up to the edge; returns how many lines changed.

    A line is left alone when it has no part the padding did not decide, or when the continuation
    would run much farther than the replaced part and off the road in ``mask`` (the line turns away
    from the edge). A road meeting the edge at a shallow angle has a long padding-decided part (its
    half width over the sine of the angle), but its continuation stays on the road.
    """
    changed = 0
    for node in _edge_ends(graph, edges):
        (_, _, data), = graph.edges(node, data=True)
        xy, dt = oriented(data, node)
        made = _padding_made(xy, dt, edges)
        first = int(np.argmin(made))
        if made.all() or first <= 1:
            continue
        tail = xy[first:]
        along = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(tail, axis=0).T))])
        back = min(int(np.searchsorted(along, max(DIRECTION_REACH_PX, 4 * float(dt[first])))), len(tail) - 1)
        vector = tail[0] - tail[back]
        if not vector.any():
            continue
        direction = vector / np.hypot(*vector)
        anchor = tail[0]
        reach = distance_to_box(anchor, direction, edges.width, edges.height)
        replaced = float(np.hypot(*np.diff(xy[:first + 1], axis=0).T).sum())
        tip = anchor + direction * reach
        if reach > replaced + 3 * float(dt[first]) and not mask.on_road(anchor, tip):
            continue
        graph.nodes[node]["xy"] = tip
        data["xy"] = np.concatenate([tip[None], tail])
        data["dt"] = np.concatenate([[np.nan], dt[first:]])
        data["start"] = node
        changed += 1
    return changed
