"""Merging skeleton junctions that belong to one road junction.

Where two wide roads cross or meet at a shallow angle, thinning does not make one junction: it
makes two or more, joined by short skeleton edges that run across the junction's pavement rather
than along a road. Each junction node's ``radius`` (the distance transform at it) is the radius of
the largest disk of road around it, so the part of a link between two junctions that lies
outside both disks is its length less the two radii. By the rule spur pruning uses for branches,
a link running less than ``spur_m`` outside its junctions is not a road of its own: such clusters
of junctions become one node at their mean position, and each road entering the cluster is
trimmed where it enters the cluster's disks and led straight to that node, so the lines keep
their geometry outside the junction.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nltool.optional import require
from nltool.vectors.meeting import arm, meeting_point
from nltool.vectors.pixelgraph import length_m, merge_chains, oriented
from nltool.vectors.settings import PixelScale, VectorizeSettings

MEET_PX = 2.0
MEET_RADII = 0.75
"""The roads leaving a cluster of junctions meet at one point when their lines pass within this many of
its largest junction radius of that point (and at least within ``MEET_PX``)."""


def _is_junction(graph: Any, node: Any) -> bool:
    """A node where three or more skeleton lines meet (cut ends never are)."""
    return graph.degree(node) >= 3 and not graph.nodes[node].get("cut")


def _is_short_link(graph: Any, u: Any, v: Any, xy: np.ndarray, settings: VectorizeSettings,
                   scale: PixelScale) -> bool:
    """Whether the line ``xy`` between junctions ``u`` and ``v`` runs less than ``spur_m`` outside their disks."""
    outside = length_m(xy, scale) - (graph.nodes[u]["radius"] + graph.nodes[v]["radius"]) * scale.mean
    return outside < settings.spur_m


def junction_clusters(graph: Any, settings: VectorizeSettings, scale: PixelScale) -> list[set[Any]]:
    """Groups of two or more junctions joined by short links (see the module docstring)."""
    nx = require("networkx", "road network vectorization")
    links = nx.Graph()
    for u, v, data in graph.edges(data=True):
        if u == v or not (_is_junction(graph, u) and _is_junction(graph, v)):
            continue
        if _is_short_link(graph, u, v, data["xy"], settings, scale):
            links.add_edge(u, v)
    return [set(c) for c in nx.connected_components(links) if _one_crossing(graph, c)]


def _one_crossing(graph: Any, cluster: set[Any]) -> bool:
    """Whether the roads leaving a cluster meet at one point (their lines pass within ``MEET_RADII`` of the
    largest junction radius of it, at least ``MEET_PX``): true of the junctions thinning makes where
    wide roads cross, false where a street crosses both carriageways of a dual carriageway (two
    crossings a carriageway and a median apart: the lines miss the middle by about a junction radius)."""
    arms = []
    for member in cluster:
        for _, other, data in graph.edges(member, data=True):
            if other not in cluster:
                arms.append(arm(*oriented(data, member)))
    found = meeting_point([a for a in arms if a is not None])
    radius = max(graph.nodes[n]["radius"] for n in cluster)
    return found is None or found[1] <= max(MEET_PX, MEET_RADII * radius)


def _inside(points: np.ndarray, centres: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Which points lie inside at least one of the disks (centres K×2, radii K)."""
    distance = np.hypot(*(points[:, None, :] - centres[None, :, :]).transpose(2, 0, 1))
    return (distance < radii[None, :]).any(axis=1)


def _trimmed(xy: np.ndarray, dt: np.ndarray, centre: np.ndarray, centres: np.ndarray, radii: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
    """A polyline leaving the cluster (``xy[0]`` on it), led from ``centre`` to its first vertex
    outside the cluster's disks (never past its last vertex)."""
    inside = _inside(xy[:-1], centres, radii)
    first = int(np.argmin(inside)) if not inside.all() else len(xy) - 1
    return np.concatenate([centre[None], xy[first:]]), np.concatenate([[np.nan], dt[first:]])


def merge_close_junctions(graph: Any, settings: VectorizeSettings, scale: PixelScale) -> int:
    """Contract each cluster of :func:`junction_clusters` into one node; returns how many nodes were removed.

    The edges linking a cluster's junctions are dropped; every other edge of the cluster is
    re-attached to the new node (an edge between two of its junctions becomes a loop on it).
    """
    removed = 0
    for cluster in junction_clusters(graph, settings, scale):
        keep = min(cluster, key=repr)
        centres = np.array([graph.nodes[n]["xy"] for n in cluster], np.float64)
        radii = np.array([graph.nodes[n]["radius"] for n in cluster], np.float64)
        centre = centres.mean(axis=0)
        edges = []
        seen = set()
        for member in cluster:
            for u, v, key, data in graph.edges(member, keys=True, data=True):
                ident = (frozenset((u, v)), key)
                if ident in seen:
                    continue
                seen.add(ident)
                other = v if u == member else u
                xy, dt = oriented(data, member)
                if other in cluster:
                    if _is_short_link(graph, member, other, xy, settings, scale):
                        continue
                    xy, dt = xy.copy(), dt.copy()
                    xy[0] = xy[-1] = centre
                    edges.append((keep, xy, dt))
                else:
                    xy, dt = _trimmed(xy, dt, centre, centres, radii)
                    edges.append((other, xy, dt))
        graph.remove_nodes_from(cluster)
        graph.add_node(keep, xy=centre, cut=False, radius=float(radii.max()))
        for other, xy, dt in edges:
            graph.add_edge(keep, other, xy=xy, dt=dt, start=keep)
        removed += len(cluster) - 1
    if removed:
        merge_chains(graph)
    return removed
