"""APLS (Average Path Length Similarity), the SpaceNet Roads metric: SpaceNet's standard by default.

``variant="spacenet"`` (the default) is the metric as CosmiQ Works' reference ``apls/apls.py`` computes it,
quirks included (:mod:`nltool.vectors.apls_spacenet` lists every step), with the defaults of its
``main()``: ``linestring_delta_m`` 200, ``is_curved_eps`` 0.12, ``max_snap_dist_m`` 4,
``min_path_length_m`` 0.001, ``max_control_points`` 500 (truths of 500 nodes or more are scored on a
seeded sample of 500 nodes per graph). This is the number papers, challenges and leaderboards report.

``variant="nltool"`` is nltool's own variant, **not** the standard metric (results say so), on graphs in
metres from :func:`metric_graph` (lines split where they cross):

1. Control points: every node of each graph plus points every ``linestring_delta_m`` along *every*
   edge (none under 0.75 × delta, the midpoint up to delta, else evenly spaced), straight or curved.
2. Each graph's control points snap onto the nearest edge of the other graph within
   ``max_snap_dist_m`` as new nodes that never rename or collide with the other graph's nodes.
3. For every ordered pair of control points (a, b) joined in their own graph by a path of at least
   ``min_path_length_m`` (whether or not a snapped): min(1, |L - L'| / L), 1 if a or b did not snap
   or the other graph does not connect them.
4. Direction score 1 - mean; APLS the harmonic mean of the two directions (0 if either is 0); more than
   ``max_control_points`` control points: a seeded sample.

Both variants use the same parameter defaults (the reference's); nltool's earlier numbers used
``linestring_delta_m=50, min_path_length_m=10`` with the nltool variant.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from nltool.optional import require
from nltool.vectors.settings import NLTOOL_VARIANT, STANDARD_VARIANT, AplsSettings

SNAP_EPS_M = 1e-6
"""A point projecting within this distance of an edge's end snaps onto that end's node (nltool variant)."""
NODE_ROUND_M = 1e-3
"""Line ends closer than this (after rounding) are one node when a graph is built from lines (nltool variant)."""


def metric_name(variant: str) -> str:
    """What a variant's numbers are, in words: the standard metric, or explicitly not."""
    if variant == STANDARD_VARIANT:
        return "SpaceNet APLS (standard: CosmiQ reference apls.py, main() defaults)"
    return "nltool variant of APLS, NOT SpaceNet's standard metric (not comparable with published APLS)"


@dataclass(frozen=True)
class AplsResult:
    """The total and both directions, with how many control points and paths each direction used, and
    which variant computed them."""

    apls: float
    truth_to_proposal: float
    proposal_to_truth: float
    truth_control_points: int
    proposal_control_points: int
    truth_paths: int
    proposal_paths: int
    variant: str = STANDARD_VARIANT

    @property
    def metric(self) -> str:
        """What the numbers are, in words (reports and the CLI print it)."""
        return metric_name(self.variant)

    def summary(self) -> str:
        """One line: the total, both directions and the metric's name."""
        return (f"APLS {self.apls:.4f} (truth->proposal {self.truth_to_proposal:.4f} over {self.truth_paths} paths, "
                f"proposal->truth {self.proposal_to_truth:.4f} over {self.proposal_paths} paths) - {self.metric}")

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON reports (with ``standard`` and ``metric`` spelled out)."""
        return {**asdict(self), "standard": self.variant == STANDARD_VARIANT, "metric": self.metric}


def standard_apls(truth_lonlat: list[np.ndarray], proposal_lonlat: list[np.ndarray],
                  settings: AplsSettings | None = None) -> AplsResult:
    """SpaceNet's APLS of two networks given as lines in WGS 84 longitude/latitude (in file order: node
    numbering, hence the reference's quirks, follows it)."""
    from nltool.vectors.apls_spacenet import spacenet_apls

    settings = settings or AplsSettings()
    score = spacenet_apls(truth_lonlat, proposal_lonlat, linestring_delta_m=settings.linestring_delta_m,
                          is_curved_eps=settings.is_curved_eps, max_snap_dist_m=settings.max_snap_dist_m,
                          min_path_length_m=settings.min_path_length_m, max_nodes=settings.max_control_points,
                          seed=settings.seed)
    return AplsResult(score.apls, score.truth_to_proposal.score, score.proposal_to_truth.score,
                      score.truth_control_points, score.proposal_control_points, score.truth_to_proposal.paths,
                      score.proposal_to_truth.paths, STANDARD_VARIANT)


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


def nltool_apls(truth: Any, proposal: Any, settings: AplsSettings | None = None) -> AplsResult:
    """nltool's variant (not the standard metric) of a proposal graph against a truth graph (both from
    :func:`metric_graph`, in metres)."""
    settings = settings or AplsSettings(variant=NLTOOL_VARIANT)
    if truth.number_of_edges() == 0 or proposal.number_of_edges() == 0:
        return AplsResult(0.0, 0.0, 0.0, truth.number_of_nodes(), proposal.number_of_nodes(), 0, 0, NLTOOL_VARIANT)
    truth_cp, truth_controls = with_control_points(truth, settings)
    proposal_cp, proposal_controls = with_control_points(proposal, settings)
    snap = settings.max_snap_dist_m
    proposal_prime, truth_alias = snap_points(proposal, {c: truth_cp.nodes[c]["xy"] for c in truth_controls}, snap)
    truth_prime, proposal_alias = snap_points(truth, {c: proposal_cp.nodes[c]["xy"] for c in proposal_controls}, snap)
    forward, forward_paths = direction_score(truth_cp, truth_controls, proposal_prime, truth_alias, settings)
    backward, backward_paths = direction_score(proposal_cp, proposal_controls, truth_prime, proposal_alias, settings)
    total = 2 * forward * backward / (forward + backward) if forward > 0 and backward > 0 else 0.0
    return AplsResult(total, forward, backward, len(truth_controls), len(proposal_controls), forward_paths,
                      backward_paths, NLTOOL_VARIANT)
