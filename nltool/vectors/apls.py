"""APLS (Average Path Length Similarity), the SpaceNet Roads metric, on NetworkX 3 graphs in metres.

Reimplemented from CosmiQ Works' reference ``apls/apls.py`` (``make_graphs``,
``create_graph_midpoints``, ``insert_control_points``, ``single_path_metric``,
``path_sim_metric``, ``compute_apls_metric``):

1. Control points: every node of each graph plus points inserted every ``linestring_delta_m``
   along its edges (an edge shorter than 0.75 × delta gets none, one up to delta gets its
   midpoint, a longer one evenly spaced points about delta apart).
2. Each graph's control points are snapped onto the other graph (not onto its control-point
   version), onto the nearest edge within ``max_snap_dist_m``; points farther away are missing.
3. For every ordered pair of control points (a, b) connected in their own graph by a path of at
   least ``min_path_length_m``: L = shortest path in the own graph, L' = shortest path between
   the snapped points in the other graph; the pair scores min(1, |L - L'| / L), and 1 when a or b
   did not snap or the other graph does not connect them.
4. One direction's score is 1 - mean(pair scores) (0 without pairs); APLS is the harmonic mean
   of truth→proposal and proposal→truth, 0 if either is 0 or either graph is empty.

Differences from the reference, all on purpose: control points go on straight edges too (the
reference's ``is_curved_eps`` skipped them depending on the version's default); snapped points
never rename or collide with the other graph's nodes (the reference could relabel a node twice);
``min_path_length_m`` applies to every pair (the reference skipped it for unsnapped start
nodes); graphs with more than ``max_control_points`` control points use a seeded sample of them.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from nltool.optional import require
from nltool.vectors.settings import AplsSettings

SNAP_EPS_M = 1e-6
"""A point projecting within this distance of an edge's end snaps onto that end's node."""
NODE_ROUND_M = 1e-3
"""Line ends closer than this (after rounding) are one node when a graph is built from lines."""


@dataclass(frozen=True)
class AplsResult:
    """The total and both directions, with how many control points and paths each direction used."""

    apls: float
    truth_to_proposal: float
    proposal_to_truth: float
    truth_control_points: int
    proposal_control_points: int
    truth_paths: int
    proposal_paths: int

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON reports."""
        return asdict(self)


def _nx() -> Any:
    return require("networkx", "the APLS metric")


def _shapely() -> Any:
    return require("shapely", "the APLS metric")


def metric_graph(lines: list[np.ndarray]) -> Any:
    """A MultiGraph from centre lines in metres: lines are split where they cross or touch, line ends
    closer than a millimetre are one node. Edges carry ``geometry`` (LineString), ``length``, ``start``."""
    shapely = _shapely()
    graph = _nx().MultiGraph()
    segments = [shapely.LineString(line) for line in lines if len(line) >= 2]
    segments = [s for s in segments if s.length > 0]
    if not segments:
        return graph
    noded = shapely.node(shapely.MultiLineString(segments))
    index: dict[tuple[float, float], int] = {}

    def node_at(point: tuple[float, ...]) -> int:
        key = (round(point[0] / NODE_ROUND_M), round(point[1] / NODE_ROUND_M))
        if key not in index:
            index[key] = len(index)
            graph.add_node(index[key], xy=np.array(point[:2], np.float64))
        return index[key]

    for piece in getattr(noded, "geoms", [noded]):
        if piece.length == 0:
            continue
        start, end = node_at(piece.coords[0]), node_at(piece.coords[-1])
        graph.add_edge(start, end, geometry=piece, length=piece.length, start=start)
    return graph


def _split_edge(graph: Any, u: Any, v: Any, key: Any, cuts: list[tuple[float, Any]]) -> None:
    """Replace edge (u, v, key) by pieces through new nodes at the given distances along its line."""
    substring = require("shapely.ops", "the APLS metric").substring
    data = graph.edges[u, v, key]
    line, start = data["geometry"], data["start"]
    end = v if start == u else u
    graph.remove_edge(u, v, key)
    for distance, node in cuts:
        point = line.interpolate(distance)
        graph.add_node(node, xy=np.array([point.x, point.y]))
    marks = [(0.0, start), *sorted(cuts, key=lambda c: c[0]), (line.length, end)]
    for (d0, a), (d1, b) in itertools.pairwise(marks):
        graph.add_edge(a, b, geometry=substring(line, d0, d1), length=d1 - d0, start=a)


def _control_distances(length: float, delta: float) -> list[float]:
    """Where control points go along an edge of ``length`` (SpaceNet's create_graph_midpoints rule)."""
    if length < 0.75 * delta:
        return []
    if length <= delta:
        return [0.5 * length]
    count = len(np.arange(0, length, delta)) + 1
    return np.linspace(0, length, count)[1:-1].tolist()


def with_control_points(graph: Any, settings: AplsSettings) -> tuple[Any, list[Any]]:
    """A copy of ``graph`` with control points inserted along its edges, and the control nodes
    (all nodes, or a seeded sample of ``max_control_points`` of them)."""
    out = graph.copy()
    next_id = itertools.count(max((n for n in graph.nodes), default=-1) + 1)
    for u, v, key, data in list(graph.edges(keys=True, data=True)):
        distances = _control_distances(data["length"], settings.linestring_delta_m)
        if distances:
            _split_edge(out, u, v, key, [(d, next(next_id)) for d in distances])
    controls = sorted(out.nodes)
    if len(controls) > settings.max_control_points:
        rng = np.random.default_rng(settings.seed)
        controls = sorted(rng.choice(controls, size=settings.max_control_points, replace=False).tolist())
    return out, controls


def snap_points(graph: Any, points: dict[Any, np.ndarray], max_distance: float) -> tuple[Any, dict[Any, Any]]:
    """Insert points onto their nearest edge of a copy of ``graph`` (within ``max_distance``).

    Returns the new graph and, for each point that snapped, the node it became (an existing node
    when it projects onto an edge's end, else a new node splitting the edge).
    """
    shapely = _shapely()
    out = graph.copy()
    edges = list(graph.edges(keys=True))
    alias: dict[Any, Any] = {}
    if not edges or not points:
        return out, alias
    tree = shapely.STRtree([graph.edges[e]["geometry"] for e in edges])
    ids = list(points)
    (which, found), distances = tree.query_nearest(shapely.points(np.array([points[i] for i in ids])),
                                                   max_distance=max_distance, return_distance=True,
                                                   all_matches=False)
    next_id = itertools.count(max(graph.nodes, default=-1) + 1)
    cuts: dict[tuple[Any, Any, Any], list[tuple[float, Any]]] = {}
    for point_index, edge_index, _ in zip(which, found, distances, strict=True):
        point_id, edge = ids[point_index], edges[edge_index]
        data = graph.edges[edge]
        along = data["geometry"].project(shapely.Point(points[point_id]))
        end = edge[1] if data["start"] == edge[0] else edge[0]
        if along <= SNAP_EPS_M:
            alias[point_id] = data["start"]
        elif along >= data["length"] - SNAP_EPS_M:
            alias[point_id] = end
        else:
            node = next(next_id)
            alias[point_id] = node
            cuts.setdefault(edge, []).append((along, node))
    for (u, v, key), edge_cuts in cuts.items():
        _split_edge(out, u, v, key, edge_cuts)
    return out, alias


def direction_score(native: Any, controls: list[Any], other: Any, alias: dict[Any, Any],
                    settings: AplsSettings) -> tuple[float, int]:
    """1 - mean path-length difference over ordered control-point pairs, and the number of pairs."""
    nx = _nx()
    control_set = set(controls)
    total, count = 0.0, 0
    for source in controls:
        lengths = nx.single_source_dijkstra_path_length(native, source, weight="length")
        targets = [(t, length) for t, length in lengths.items()
                   if t in control_set and t != source and length >= settings.min_path_length_m]
        if not targets:
            continue
        count += len(targets)
        if source not in alias:
            total += len(targets)
            continue
        reached = nx.single_source_dijkstra_path_length(other, alias[source], weight="length")
        for target, length in targets:
            other_length = reached.get(alias[target]) if target in alias else None
            total += 1.0 if other_length is None else min(1.0, abs(length - other_length) / length)
    return (1.0 - total / count, count) if count else (0.0, 0)


def apls(truth: Any, proposal: Any, settings: AplsSettings | None = None) -> AplsResult:
    """APLS of a proposal graph against a truth graph (both from :func:`metric_graph`, in metres)."""
    settings = settings or AplsSettings()
    if truth.number_of_edges() == 0 or proposal.number_of_edges() == 0:
        return AplsResult(0.0, 0.0, 0.0, truth.number_of_nodes(), proposal.number_of_nodes(), 0, 0)
    truth_cp, truth_controls = with_control_points(truth, settings)
    proposal_cp, proposal_controls = with_control_points(proposal, settings)
    snap = settings.max_snap_dist_m
    proposal_prime, truth_alias = snap_points(proposal, {c: truth_cp.nodes[c]["xy"] for c in truth_controls}, snap)
    truth_prime, proposal_alias = snap_points(truth, {c: proposal_cp.nodes[c]["xy"] for c in proposal_controls}, snap)
    forward, forward_paths = direction_score(truth_cp, truth_controls, proposal_prime, truth_alias, settings)
    backward, backward_paths = direction_score(proposal_cp, proposal_controls, truth_prime, proposal_alias, settings)
    total = 2 * forward * backward / (forward + backward) if forward > 0 and backward > 0 else 0.0
    return AplsResult(total, forward, backward, len(truth_controls), len(proposal_controls), forward_paths,
                      backward_paths)
