"""Putting each junction where its roads' centre lines meet.

Thinning puts a junction at the centre of the largest disk of pavement the roads share. Where roads
meet at right angles that is where their centre lines cross; where a road leaves another at a
shallow angle the shared pavement is long (the two half widths over the sine of the angle) and the
skeleton's junction lies far along it (15-30 m from the true junction for 7-9 m roads at 15-25°).
Each road leaving a junction (an "arm") is free of the junction's pavement where the distance
transform along it falls back to the road's own half width; the straight line fitted there, followed
back, passes through the true junction. So the junction moves to the point nearest all its arms'
lines (least squares) when they meet there, and each arm is led straight from that point to its free
part.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from nltool.vectors.border import PaddedMask
from nltool.vectors.pixelgraph import median_radius, oriented

ARM_FIT_PX = 10.0
"""At least this much of an arm's free part (pixels of polyline) is fitted with a line."""
FIT_OFFSET_RADII = 2.0
"""The fit starts this many half widths past where the arm gets free (the skeleton still bends there,
towards the wedge of ground between the roads)."""
FREE_SLACK_PX = 1.0
"""An arm is free of the junction where its distance transform is within this of its median."""
MIN_SPREAD = 1 - np.cos(np.radians(8.0))
"""Arm lines closer to parallel than this (the smallest eigenvalue of the least-squares system, per
line) say nothing about where they meet; the junction stays."""


@dataclass(frozen=True)
class Arm:
    """A road leaving a junction: its polyline and samples from the junction, where its free part starts,
    and the line fitted there (a point on it and the unit direction away from the junction)."""

    xy: np.ndarray
    dt: np.ndarray
    free: int
    point: np.ndarray
    direction: np.ndarray


def arm(xy: np.ndarray, dt: np.ndarray) -> Arm | None:
    """The arm along ``xy`` (from the junction), or None when it never gets free of the junction's pavement."""
    along = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(xy, axis=0).T))])
    radius = median_radius(dt)
    free = np.flatnonzero(np.isfinite(dt) & (dt <= radius + FREE_SLACK_PX) & (along > 0))
    if not free.size:
        return None
    first = int(free[0])
    start = int(np.searchsorted(along, along[first] + FIT_OFFSET_RADII * radius))
    stop = int(np.searchsorted(along, along[start] + max(ARM_FIT_PX, 4 * radius))) if start < len(xy) else start
    points = xy[start:stop + 1]
    if len(points) < 3 or along[min(stop, len(xy) - 1)] - along[start] < ARM_FIT_PX / 2:
        return None
    centre = points.mean(axis=0)
    direction = np.linalg.svd(points - centre, full_matrices=False)[2][0]
    if np.dot(points[-1] - points[0], direction) < 0:
        direction = -direction
    return Arm(xy, dt, first, centre, direction)


def meeting_point(arms: list[Arm]) -> tuple[np.ndarray, float] | None:
    """The point nearest all the arms' lines (least squares) and its largest distance to one of them;
    None when the lines are too close to parallel to meet anywhere definite."""
    if len(arms) < 2:
        return None
    system, target = np.zeros((2, 2)), np.zeros(2)
    for a in arms:
        across = np.eye(2) - np.outer(a.direction, a.direction)
        system += across
        target += across @ a.point
    if np.linalg.eigvalsh(system)[0] < MIN_SPREAD * len(arms):
        return None
    point = np.linalg.solve(system, target)
    miss = max(abs(float(a.direction[0] * (point - a.point)[1] - a.direction[1] * (point - a.point)[0])) for a in arms)
    return point, miss


def _distance(point: np.ndarray, xy: np.ndarray) -> float:
    """Distance from a point to an N×2 polyline."""
    if len(xy) < 2:
        return float(np.hypot(*(xy[0] - point)))
    start, step = xy[:-1], np.diff(xy, axis=0)
    t = np.clip(((point - start) * step).sum(axis=1) / np.maximum((step ** 2).sum(axis=1), 1e-12), 0.0, 1.0)
    return float(np.hypot(*(start + t[:, None] * step - point).T).min())


def _led_from(point: np.ndarray, a: Arm) -> tuple[np.ndarray, np.ndarray]:
    """The arm's polyline from ``point``: straight to its first free vertex ahead of the point, then as it was."""
    ahead = np.flatnonzero((np.arange(len(a.xy)) >= a.free) & ((a.xy - point) @ a.direction > 0))
    first = int(ahead[0]) if ahead.size else len(a.xy) - 1
    return np.concatenate([point[None], a.xy[first:]]), np.concatenate([[np.nan], a.dt[first:]])


def place_junctions(graph: Any, mask: PaddedMask) -> int:
    """Move each junction (degree 3 or more, no loop) to where its arms' lines meet, when that is outside
    the junction's pavement disk (where roads meet at wide angles thinning is right, and lines fitted
    to curved arms are not), the lines meet within that disk's radius of one another, and the point
    lies within that radius of one of the arms (on the road it runs back along) and every arm's line
    runs on road in ``mask`` from there to the arm; returns how many moved."""
    moved = 0
    for node in list(graph.nodes):
        data = graph.nodes[node]
        if graph.degree(node) < 3 or data.get("cut") or graph.has_edge(node, node):
            continue
        edges = list(graph.edges(node, keys=True, data=True))
        arms = [arm(*oriented(d, node)) for _, _, _, d in edges]
        fitted = [a for a in arms if a is not None]
        found = meeting_point(fitted)
        if found is None or len(fitted) < len(arms):
            continue
        point, miss = found
        radius = float(data.get("radius", 0.0))
        shift = float(np.hypot(*(point - data["xy"])))
        if shift <= radius or miss > max(radius, 1.0) or min(_distance(point, a.xy) for a in fitted) > radius:
            continue
        if not all(mask.on_road(point, a.point) for a in fitted):  # lines fitted to curved arms meet off them
            continue
        for (_, _, _, d), a in zip(edges, fitted, strict=True):
            d["xy"], d["dt"] = _led_from(point, a)
            d["start"] = node
        data["xy"] = point
        moved += 1
    return moved
