"""Cleaning a skeleton graph in pixel coordinates: spurs, degree-2 chains, gaps, short pieces.

The graph is a NetworkX ``MultiGraph`` (two roads may join the same two junctions, a ring road is
a self-loop). Node attributes: ``xy`` (x, y in pixels), ``cut`` (a dead end made by cutting the
raster into strips, not by the road). Edge attributes: ``xy`` (N×2 polyline), ``start`` (the node
``xy[0]`` sits on) and ``dt`` (the distance transform at each vertex, NaN where a vertex was made
rather than read off the skeleton; the road's width comes from it).
Lengths are compared in metres through the raster's :class:`~nltool.vectors.settings.PixelScale`.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from nltool.optional import require
from nltool.vectors.settings import PixelScale, VectorizeSettings

DIRECTION_REACH_PX = 10.0
"""How far back from a dead end its direction is measured (pixels of polyline)."""


def oriented(data: dict[str, Any], node: Any) -> tuple[np.ndarray, np.ndarray]:
    """The edge's polyline and distance-transform samples, starting at ``node``."""
    if data["start"] == node:
        return data["xy"], data["dt"]
    return data["xy"][::-1], data["dt"][::-1]


def length_m(xy: np.ndarray, scale: PixelScale) -> float:
    """Length in metres of an N×2 pixel polyline."""
    if len(xy) < 2:
        return 0.0
    step = np.diff(xy, axis=0)
    return float(np.hypot(step[:, 0] * scale.x, step[:, 1] * scale.y).sum())


def next_node_id(graph: Any) -> int:
    """An integer node id not used yet (graphs here use ints, tuples or strings as ids)."""
    numbers = [n for n in graph.nodes if isinstance(n, int)]
    return max(numbers, default=-1) + 1


def merge_chains(graph: Any) -> None:
    """Contract every node with exactly two edge ends (not a cut end, not on a self-loop) into one edge."""
    for node in list(graph.nodes):
        if graph.nodes[node].get("cut") or graph.degree(node) != 2 or graph.has_edge(node, node):
            continue
        (_, a, da), (_, b, db) = list(graph.edges(node, data=True))
        (xy1, dt1), (xy2, dt2) = oriented(da, a), oriented(db, node)
        merged = {"xy": np.concatenate([xy1, xy2[1:]]), "start": a, "dt": np.concatenate([dt1, dt2[1:]])}
        graph.remove_node(node)
        graph.add_edge(a, b, **merged)


def prune_spurs(graph: Any, settings: VectorizeSettings, scale: PixelScale) -> int:
    """Remove branches that reach less than ``spur_m`` out of the road they leave, shortest first;
    returns how many.

    A branch starts at its junction, in the middle of the road it leaves, so its reach is its length
    less the junction's radius (the road's half width there): the corners of a wide road's end and
    bumps on its edge are pruned whatever the road's width. A branch is pruned only while its
    junction still has degree 3 or more, so pruning never eats into a road: the two remaining
    edges of the junction are merged into one.
    """
    spurs = []
    for u, v, key, data in graph.edges(keys=True, data=True):
        for end, junction in ((u, v), (v, u)):
            if graph.degree(end) == 1 and not graph.nodes[end].get("cut") and graph.degree(junction) >= 3:
                reach = length_m(data["xy"], scale) - graph.nodes[junction].get("radius", 0.0) * scale.mean
                spurs.append((reach, end, junction, key))
    pruned = 0
    for length, end, junction, key in sorted(spurs, key=lambda s: s[0]):
        if length >= settings.spur_m:
            break
        if end in graph and graph.has_edge(end, junction, key) and graph.degree(junction) >= 3:
            graph.remove_node(end)
            pruned += 1
    isolated = [n for n in graph.nodes if graph.degree(n) == 0]
    graph.remove_nodes_from(isolated)
    merge_chains(graph)
    return pruned


def end_direction(xy_from_end: np.ndarray, radius: float = 0.0) -> tuple[int, np.ndarray]:
    """Where a dead end's straight part begins and the unit vector pointing out of it.

    Thinning bends the last pixels of a skeleton towards a corner of the road's end, over about the
    road's half width (``radius``), so the direction is measured between the points ``radius`` and
    ``radius + max(10, 2 × radius)`` pixels back from the end (less on short edges). Returns the
    index of the first of those points along ``xy_from_end`` and the direction.
    """
    distance = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(xy_from_end, axis=0).T))])
    skip = min(radius, distance[-1] / 3)
    reach = min(skip + max(DIRECTION_REACH_PX, 2 * radius), distance[-1])
    anchor = int(np.searchsorted(distance, skip))
    back = int(min(np.searchsorted(distance, reach), len(xy_from_end) - 1))
    vector = xy_from_end[anchor] - xy_from_end[back]
    norm = math.hypot(*vector)
    return anchor, (vector / norm if norm > 0 else np.zeros(2))


def median_radius(dt: np.ndarray) -> float:
    """The road's half width in pixels along an edge (median of its distance-transform samples)."""
    samples = dt[np.isfinite(dt)]
    return float(np.median(samples)) if samples.size else 0.0


def dead_ends(graph: Any) -> list[tuple[Any, np.ndarray, float]]:
    """(node, outward unit direction, road half width in pixels) of every degree-1 node."""
    ends = []
    for node in graph.nodes:
        if graph.degree(node) == 1:
            (_, _, data), = graph.edges(node, data=True)
            radius = median_radius(data["dt"])
            ends.append((node, end_direction(oriented(data, node)[0], radius)[1], radius))
    return ends


def _lines_up(a: tuple[np.ndarray, np.ndarray, float], b: tuple[np.ndarray, np.ndarray, float],
              cos_limit: float, tan_limit: float) -> bool:
    """Whether two dead ends (position, outward direction, half width) face each other along one line.

    The ends must point against each other within the angle, each towards the other, and each must
    lie on the other's line within the angle's spread or the road's half width (thinning bends the
    last pixels of a skeleton, so the line between two close ends says little about their angle).
    """
    (pa, da, ra), (pb, db, rb) = a, b
    gap = pb - pa
    distance = math.hypot(*gap)
    if distance == 0:
        return True
    if float(da @ -db) < cos_limit or float(da @ gap) <= 0 or float(db @ -gap) <= 0:
        return False
    spread = max(distance * tan_limit, ra, rb)
    return abs(da[0] * gap[1] - da[1] * gap[0]) <= spread and abs(db[0] * gap[1] - db[1] * gap[0]) <= spread


def join_gaps(graph: Any, settings: VectorizeSettings, scale: PixelScale) -> int:
    """Join pairs of dead ends closer than ``gap_m`` that line up within ``gap_angle_deg``.

    Closest pairs first; each end joins at most once. Returns how many gaps were joined.
    """
    cos_limit = math.cos(math.radians(settings.gap_angle_deg))
    tan_limit = math.tan(math.radians(settings.gap_angle_deg))
    candidates = []
    for (a, da, ra), (b, db, rb) in itertools.combinations(dead_ends(graph), 2):
        pa, pb = graph.nodes[a]["xy"], graph.nodes[b]["xy"]
        distance = math.hypot(*((pb - pa) * (scale.x, scale.y)))
        if distance > settings.gap_m or graph.has_edge(a, b):  # a lone short segment is not a gap
            continue
        if _lines_up((pa, da, ra), (pb, db, rb), cos_limit, tan_limit):
            candidates.append((distance, a, b))
    joined, used = 0, set[Any]()
    for _, a, b in sorted(candidates, key=lambda c: c[0]):
        if a in used or b in used:
            continue
        xy = np.stack([graph.nodes[a]["xy"], graph.nodes[b]["xy"]])
        graph.add_edge(a, b, xy=xy, start=a, dt=np.full(2, np.nan))
        used.update((a, b))
        joined += 1
    return joined


def drop_short_components(graph: Any, settings: VectorizeSettings, scale: PixelScale) -> int:
    """Remove connected pieces whose edges add up to less than ``min_component_m``; returns how many."""
    nx = require("networkx", "road networks")
    dropped = 0
    for component in list(nx.connected_components(graph)):
        total = sum(length_m(d["xy"], scale) for _, _, d in graph.subgraph(component).edges(data=True))
        if total < settings.min_component_m:
            graph.remove_nodes_from(component)
            dropped += 1
    return dropped


def _box_range(p: np.ndarray, q: np.ndarray, box: tuple[float, float, float, float]) -> tuple[float, float]:
    """The part [t0, t1] of segment p→q (t in [0, 1]) inside box (x0, y0, x1, y1) (Liang-Barsky)."""
    t0, t1 = 0.0, 1.0
    delta = q - p
    for axis, low, high in ((0, box[0], box[2]), (1, box[1], box[3])):
        if delta[axis] == 0:
            if not low <= p[axis] <= high:
                return 1.0, 0.0
            continue
        a, b = (low - p[axis]) / delta[axis], (high - p[axis]) / delta[axis]
        t0, t1 = max(t0, min(a, b)), min(t1, max(a, b))
    return t0, t1


def clip_polyline(xy: np.ndarray, dt: np.ndarray, box: tuple[float, float, float, float]
                  ) -> list[tuple[np.ndarray, np.ndarray, bool, bool]]:
    """The parts of a polyline inside box (x0, y0, x1, y1), bounds included (infinite bounds allowed):
    (xy, dt, starts at a cut, ends at a cut), with a cut point added where the line crosses the box."""
    inside = (xy[:, 0] >= box[0]) & (xy[:, 0] <= box[2]) & (xy[:, 1] >= box[1]) & (xy[:, 1] <= box[3])
    if inside.all():
        return [(xy, dt, False, False)]
    pieces = []
    points: list[np.ndarray] = []
    samples: list[float] = []
    started_cut = False
    for i in range(len(xy)):
        if inside[i]:
            if not points and i > 0:
                t0, _ = _box_range(xy[i - 1], xy[i], box)
                points, samples, started_cut = [xy[i - 1] + t0 * (xy[i] - xy[i - 1])], [np.nan], True
            elif not points:
                started_cut = False
            points.append(xy[i])
            samples.append(dt[i])
        elif points:
            _, t1 = _box_range(xy[i - 1], xy[i], box)
            points.append(xy[i - 1] + t1 * (xy[i] - xy[i - 1]))
            samples.append(np.nan)
            pieces.append(_dedupe(points, samples, started_cut, True))
            points, samples = [], []
    if points:
        pieces.append(_dedupe(points, samples, started_cut, False))
    return [piece for piece in pieces if len(piece[0]) >= 2]


def _dedupe(points: list[np.ndarray], samples: list[float], start_cut: bool, end_cut: bool
            ) -> tuple[np.ndarray, np.ndarray, bool, bool]:
    """A clipped piece without repeated consecutive points."""
    xy, dt = np.array(points), np.array(samples, np.float64)
    keep = np.concatenate([[True], np.any(np.diff(xy, axis=0) != 0, axis=1)])
    return xy[keep], dt[keep], start_cut, end_cut


def clip_graph(graph: Any, box: tuple[float, float, float, float], cut_id: Any) -> Any:
    """The part of ``graph`` inside ``box``; each point where an edge leaves the box becomes a new node
    ``cut_id(n)`` with ``cut=True`` (a dead end made by the clipping, not by the road)."""
    nx = require("networkx", "road networks")
    out = nx.MultiGraph()
    count = itertools.count()
    for u, v, data in graph.edges(data=True):
        end = v if data["start"] == u else u
        for xy, dt, start_cut, end_cut in clip_polyline(data["xy"], data["dt"], box):
            ends = []
            for node, was_cut, point in ((data["start"], start_cut, xy[0]), (end, end_cut, xy[-1])):
                if was_cut:
                    node = cut_id(next(count))
                    out.add_node(node, xy=point, cut=True, radius=0.0)
                else:
                    out.add_node(node, **graph.nodes[node])
                ends.append(node)
            out.add_edge(ends[0], ends[1], xy=xy, dt=dt, start=ends[0])
    return out
