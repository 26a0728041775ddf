"""SpaceNet's standard APLS: what CosmiQ Works' reference ``apls/apls.py`` computes for two GeoJSON networks.

Reimplemented on NetworkX 3 and shapely 2 from the reference's last commit, run as its ``main()`` runs
``--test_method gt_json_prop_json`` (``gather_files`` then ``execute``), quirks included, so that the
numbers equal the ones papers and leaderboards report (tests/core/test_apls_reference.py checks them
against the reference's own output within 0.005). Input: road lines in WGS 84 longitude/latitude.

Graphs (``_create_gt_graph``): every distinct vertex of the file's lines is a node, numbered in file order
from 1 (truth) or 501 (proposal), two more per line; consecutive vertices are edges whose ``length`` is
their great-circle distance (sphere of 6 371 009 m, rounded to the mm). Lines meet only at shared
vertices (a crossing without a common vertex is no junction). Nodes go to the UTM zone of their mean
longitude; chains of degree-2 nodes become one edge whose geometry is the projected chain and whose length
is the sum of great-circle lengths (osmnx 0.9's ``simplify_graph``); duplicate edges of identical geometry
are removed (``create_edge_linestrings``; an edge duplicated after the graph's first edge loses both
copies); components of at most 100 nodes whose longest path is under 5 m are dropped.

Metric (``execute`` with ``main()``'s defaults: ``linestring_delta`` 200 m, ``is_curved_eps`` 0.12,
``max_snap_dist`` 4 m, ``min_path_length`` 0.001 m, ``max_nodes`` 500, ``allow_renaming`` on):

- Truth graphs under 500 nodes (``make_graphs``): control points are all nodes plus points along edges
  that are at least 150 m long *and curved* (|bounding-box diagonal - length| / length >= 0.12): one at
  the middle of edges up to 200 m, else evenly spaced about 200 m apart; straight edges get none.
  Split pieces take their planar (UTM) length, unsplit edges keep the great-circle one.
- 500 nodes or more (``make_graphs_yuge``): no points along edges; 500 nodes of each graph drawn at
  random. The reference draws unseeded; here ``random.Random(seed)`` draws exactly what the reference
  draws after ``random.seed(seed)``, so a seeded reference run gives the same sample.
- Each graph's control points are inserted one by one, in node order, into the other graph (as
  simplified, without its own control points), onto the nearest edge (the first in NetworkX's edge order
  on ties; on graphs over 1000 nodes only edges touching the 20 nodes nearest the point, within 1 km)
  if within 4 m. A point keeps its own node id, so it is **not inserted when that id already names a
  node of the other graph** (truth and proposal ids overlap once the truth has about 500 vertices), and
  its paths are then measured from that unrelated node. A point projecting onto an edge's end
  **renames** the node there to its own id (``insert_point_into_G`` with ``allow_renaming``): a node
  renamed twice keeps only the second id, and the first point is then missing.
- For each control point s and each control point t reachable from s in its own graph with
  L >= 0.001 m: 1 if t is missing from, or unreachable in, the other graph, else
  min(1, |L - L'| / L). If s itself is missing from the other graph, every reachable t counts 1 whatever
  L (the length filter applies only to snapped starts). Direction score: 1 - mean (0 without pairs);
  APLS: harmonic mean of the two, 0 if either is 0.

Shortest paths come from SciPy's Dijkstra, a batch of sources at a time, instead of the reference's
all-pairs dictionaries, so memory stays bounded on large graphs.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from nltool.optional import require

TRUTH_FIRST_ID = 0
"""``gather_files`` numbers truth nodes from here (+1) ..."""
PROPOSAL_FIRST_ID = 500
"""... and proposal nodes from here (+1), so the two overlap once the truth has about 500 vertices."""
EARTH_RADIUS_M = 6371009.0
"""osmnx's great_circle_vec radius, which gives edges their length."""
SUBGRAPH_MIN_LENGTH_M = 5.0
"""Components whose longest path is shorter than this are dropped (``_create_gt_graph``'s default)."""
SUBGRAPH_MAX_NODES = 100
"""... unless they have more nodes than this."""
LARGE_TRUTH_NODES = 500
"""``execute`` uses make_graphs below this many truth nodes, make_graphs_yuge from it on."""
MIDPOINT_SNAP_M = 5.0
"""Points along edges are inserted with insert_point_into_G's default reach."""
COINCIDENT_M = 0.05
"""A point projecting onto an edge's end is that end's node if within this in x and y."""
NEARBY_SEARCH_NODES = 1000
"""Graphs with more nodes than this only search edges touching the point's nearest nodes ..."""
NEARBY_NODES = 20
"""... this many of them ..."""
NEARBY_RADIUS_M = 1000.0
"""... within this distance."""
SOURCE_BATCH_CELLS = 1 << 22
"""Shortest paths are computed for as many sources at once as keep the distance block under this many cells."""


def _nx() -> Any:
    return require("networkx", "the APLS metric")


def _shapely() -> Any:
    return require("shapely", "the APLS metric")


@dataclass(frozen=True)
class DirectionScore:
    """One direction: 1 - mean path difference, and how many pairs it averaged."""

    score: float
    paths: int


# --- graphs as _create_gt_graph builds them ------------------------------------------------------------


def _vertex_graph(lines: Iterable[np.ndarray], first_id: int) -> Any:
    """A MultiDiGraph with a node per distinct vertex (numbered as graphTools does) and both directions of
    every segment, with great-circle ``length``."""
    nx = _nx()
    ids: dict[tuple[float, float], int] = {}
    paths: list[list[int]] = []
    counter = first_id
    for line in lines:
        counter += 1
        path = []
        for lon, lat in np.asarray(line, np.float64)[:, :2].tolist():
            if (lon, lat) not in ids:
                ids[(lon, lat)] = counter
                counter += 1
            path.append(ids[(lon, lat)])
        counter += 1
        paths.append(path)
    graph = nx.MultiDiGraph()
    graph.add_nodes_from((node, {"lon": lon, "lat": lat}) for (lon, lat), node in ids.items())
    for path in paths:
        pairs = list(itertools.pairwise(path))
        graph.add_edges_from(pairs)
        graph.add_edges_from((v, u) for u, v in pairs)
    for u, v, data in graph.edges(data=True):
        data["length"] = round(_great_circle(graph.nodes[u], graph.nodes[v]), 3)
    return graph


def _great_circle(a: dict[str, float], b: dict[str, float]) -> float:
    """Haversine distance in metres between two nodes' lon/lat (osmnx's great_circle_vec)."""
    phi1, phi2 = np.deg2rad(a["lat"]), np.deg2rad(b["lat"])
    d_phi, d_theta = phi2 - phi1, np.deg2rad(b["lon"]) - np.deg2rad(a["lon"])
    h = np.sin(d_phi / 2) ** 2 + np.cos(phi1) * np.cos(phi2) * np.sin(d_theta / 2) ** 2
    return float(2 * np.arcsin(np.sqrt(min(1.0, h))) * EARTH_RADIUS_M)


def _project_to_utm(graph: Any) -> None:
    """Give every node ``x``/``y`` in the (northern) UTM zone of the nodes' mean longitude."""
    pyproj = require("pyproj", "the APLS metric")
    lon = np.array([d["lon"] for _, d in graph.nodes(data=True)])
    lat = np.array([d["lat"] for _, d in graph.nodes(data=True)])
    zone = math.floor((float(np.mean(lon)) + 180) / 6.0) + 1
    utm = pyproj.CRS.from_dict({"datum": "WGS84", "ellps": "WGS84", "proj": "utm", "zone": zone, "units": "m"})
    x, y = pyproj.Transformer.from_crs("EPSG:4326", utm, always_xy=True).transform(lon, lat)
    for node, xi, yi in zip(graph.nodes, np.atleast_1d(x).tolist(), np.atleast_1d(y).tolist(), strict=True):
        graph.nodes[node]["x"], graph.nodes[node]["y"] = xi, yi


def _is_chain_end(graph: Any, node: Any) -> bool:
    """osmnx's is_endpoint (strict): self-loops, dead ends and anything but a plain two-way pass-through."""
    neighbours = set(graph.predecessors(node)) | set(graph.successors(node))
    if node in neighbours or graph.out_degree(node) == 0 or graph.in_degree(node) == 0:
        return True
    return not (len(neighbours) == 2 and graph.degree(node) in (2, 4))


def _walk_chain(graph: Any, path: list[Any], ends: set[Any]) -> list[Any]:
    """Follow degree-2 nodes from ``path`` = [end, next] to the next chain end (closing rings on themselves)."""
    node = path[-1]
    while node not in ends:
        onward = [s for s in graph.successors(node) if s not in path]
        if not onward:
            if path[0] in graph.successors(path[-1]):
                path.append(path[0])
            break
        node = onward[0]
        path.append(node)
    return path


def _simplify(graph: Any) -> Any:
    """Replace chains of pass-through nodes by one edge (projected chain geometry, summed length)."""
    shapely = _shapely()
    graph = graph.copy()
    ends = set([node for node in graph.nodes if _is_chain_end(graph, node)])  # built as osmnx builds it: same order
    chains = [_walk_chain(graph, [end, successor], ends)
              for end in ends for successor in graph.successors(end) if successor not in ends]
    for chain in chains:
        coords = [(graph.nodes[n]["x"], graph.nodes[n]["y"]) for n in chain]
        length = sum(graph.edges[u, v, 0]["length"] for u, v in itertools.pairwise(chain))
        graph.add_edge(chain[0], chain[-1], geometry=shapely.LineString(coords), length=length)
    graph.remove_nodes_from({node for chain in chains for node in chain[1:-1]})
    return graph


def _xy(graph: Any, node: Any) -> np.ndarray:
    return np.array([graph.nodes[node]["x"], graph.nodes[node]["y"]])


def _with_linestrings(graph: Any) -> Any:
    """create_edge_linestrings: straight geometry where missing, lines oriented from the edge's first
    node, and edges whose geometry (either way) was already seen on the same node pair removed."""
    shapely = _shapely()
    pairs: set[tuple[Any, Any]] = set()
    seen: list[Any] = []
    redundant: list[tuple[Any, Any]] = []
    for index, (u, v, data) in enumerate(graph.edges(data=True)):
        if "geometry" not in data:
            data["geometry"] = line = shapely.LineString([_xy(graph, u), _xy(graph, v)])
        else:
            line = data["geometry"]
            start = np.asarray(line.coords[0])
            if np.linalg.norm(_xy(graph, u) - start) > np.linalg.norm(_xy(graph, v) - start):
                data["geometry"] = line.reverse()
        reverse = line.reverse()
        if index == 0:
            pairs = {(u, v), (v, u)}
            seen.append(line)
        elif (u, v) in pairs or (v, u) in pairs:
            redundant.extend((u, v) for other in seen if line == other or reverse == other)
        else:
            pairs.add((u, v))
            seen.extend([line, reverse])
    for u, v in redundant:
        if graph.has_edge(u, v):
            graph.remove_edge(u, v)
    return graph


def _drop_short_components(graph: Any) -> Any:
    """Remove components of at most 100 nodes whose longest shortest path is under 5 m."""
    nx = _nx()
    doomed = []
    for component in nx.connected_components(graph):
        if len(component) > SUBGRAPH_MAX_NODES:
            continue
        sub = graph.subgraph(component)
        longest = max(max(d.values()) for _, d in nx.all_pairs_dijkstra_path_length(sub, weight="length"))
        if longest < SUBGRAPH_MIN_LENGTH_M:
            doomed.extend(component)
    graph.remove_nodes_from(doomed)
    return graph


def spacenet_graph(lines_lonlat: list[np.ndarray], first_id: int) -> Any:
    """The reference's graph of a GeoJSON's lines (lon/lat): an undirected MultiGraph in UTM metres whose
    nodes carry ``x``/``y`` and edges ``geometry`` and ``length``."""
    vertices = _vertex_graph(lines_lonlat, first_id)
    if vertices.number_of_nodes() == 0:
        return _nx().MultiGraph()
    _project_to_utm(vertices)
    graph = _with_linestrings(_simplify(vertices).to_undirected().copy())
    return _drop_short_components(graph.copy()).copy()


# --- control points ------------------------------------------------------------------------------------


def _split_line(line: Any, distance: float) -> list[Any]:
    """cut_linestring: the line in two at ``distance`` along it (the line itself at or past its ends)."""
    shapely = _shapely()
    if distance <= 0.0 or distance >= line.length:
        return [line]
    coords = list(line.coords)
    index = len(coords) - 1
    for i, point in enumerate(coords):
        along = line.project(shapely.Point(point))
        if along == distance:
            return [shapely.LineString(coords[:i + 1]), shapely.LineString(coords[i:])]
        if along > distance:
            index = i
            break
    cut = line.interpolate(distance)
    return [shapely.LineString([*coords[:index], (cut.x, cut.y)]),
            shapely.LineString([(cut.x, cut.y), *coords[index:]])]


@dataclass(frozen=True)
class _Nearest:
    """The edge nearest a point, and how far."""

    u: Any
    v: Any
    key: Any
    distance: float


def _nearest_edge(graph: Any, point: Any, nearby: set[Any]) -> _Nearest | None:
    """The nearest edge (first in edge order on ties), among edges touching ``nearby`` nodes if given."""
    shapely = _shapely()
    edges = [(u, v, k, d["geometry"]) for u, v, k, d in graph.edges(keys=True, data=True)
             if not nearby or u in nearby or v in nearby]
    if not edges:
        return None
    distances = shapely.distance(point, np.array([e[3] for e in edges], dtype=object))
    best = int(np.argmin(distances))
    u, v, key, _ = edges[best]
    return _Nearest(u, v, key, float(distances[best]))


def _end_node(graph: Any, nearest: _Nearest, x: float, y: float) -> Any | None:
    """The end of the nearest edge a point at one of its ends stands on (u first), if within 5 cm."""
    for node in (nearest.u, nearest.v):
        nx_, ny_ = _xy(graph, node)
        if abs(x - nx_) <= COINCIDENT_M and abs(y - ny_) <= COINCIDENT_M:
            return node
    return None


def insert_point(graph: Any, point: Any, node_id: Any, max_distance: float, *, rename: bool,
                 nearby: set[Any] | frozenset[Any] = frozenset()) -> Any:
    """insert_point_into_G: put ``node_id`` on the nearest edge within ``max_distance`` (unless the id is
    taken), splitting the edge; at an edge's end, rename that node (``rename``) or tie it with a 0 m edge.
    Returns the graph (a new one when a node was renamed)."""
    nx, shapely = _nx(), _shapely()
    nearest = _nearest_edge(graph, point, set(nearby))
    if nearest is None or nearest.distance > max_distance or node_id in graph:
        return graph
    data = graph.edges[nearest.u, nearest.v, nearest.key]
    line = data["geometry"]
    along = line.project(point)
    new = line.interpolate(along)
    graph.add_node(node_id, x=new.x, y=new.y)
    pieces = _split_line(line, along)
    if len(pieces) == 1:
        end = _end_node(graph, nearest, new.x, new.y)
        if end is None:
            return graph
        if rename:
            return nx.relabel_nodes(graph, {end: node_id})
        tie = shapely.LineString([(new.x, new.y), tuple(_xy(graph, end))])
        graph.add_edge(node_id, end, geometry=tie, length=tie.length)
        return graph
    u, v = nearest.u, nearest.v
    start = np.asarray(line.coords[0])
    to_u, to_v = np.linalg.norm(_xy(graph, u) - start), np.linalg.norm(_xy(graph, v) - start)
    first, second = (pieces[1], pieces[0]) if to_v < to_u else (pieces[0], pieces[1])
    if to_u < to_v:
        graph.add_edge(u, node_id, geometry=first, length=first.length)
        graph.add_edge(node_id, v, geometry=second, length=second.length)
    else:
        graph.add_edge(node_id, u, geometry=first, length=first.length)
        graph.add_edge(v, node_id, geometry=second, length=second.length)
    graph.remove_edge(u, v, nearest.key)
    return graph


def _is_curved(data: dict[str, Any], curved_eps: float) -> bool:
    """The reference's test: bounding-box diagonal differs from the edge length by at least eps × length."""
    minx, miny, maxx, maxy = data["geometry"].bounds
    diagonal = float(np.linalg.norm([maxx - minx, maxy - miny]))
    return data["length"] > 0 and abs(diagonal - data["length"]) / data["length"] >= curved_eps


def _along_edge(length: float, planar_length: float, delta: float) -> list[float]:
    """Where create_graph_midpoints puts points on an edge long enough: the middle, or ~delta apart."""
    if length <= delta:
        return [0.5 * planar_length]
    count = len(np.arange(0, length, delta)) + 1
    return np.linspace(0, length, count)[1:-1].tolist()


def with_midpoints(graph: Any, delta: float, curved_eps: float) -> Any:
    """create_graph_midpoints: a copy with points inserted along curved edges of at least 0.75 × delta."""
    shapely = _shapely()
    out = graph.copy()
    if graph.number_of_nodes() == 0:
        return out
    next_id = max(graph.nodes) + 1
    for _, _, data in graph.edges(data=True):
        if not _is_curved(data, curved_eps) or data["length"] < 0.75 * delta:
            continue
        for distance in _along_edge(data["length"], data["geometry"].length, delta):
            at = data["geometry"].interpolate(distance)
            out = insert_point(out, shapely.Point(at.x, at.y), next_id, MIDPOINT_SNAP_M, rename=False)
            next_id += 1
    return out


def _nearby_finder(graph: Any) -> Any:
    """For graphs over 1000 nodes, a function giving the 20 nodes nearest a point (within 1 km)."""
    if graph.number_of_nodes() <= NEARBY_SEARCH_NODES:
        return lambda x, y: frozenset()
    spatial = require("scipy.spatial", "the APLS metric")
    nodes = list(graph.nodes)
    tree = spatial.cKDTree(np.array([_xy(graph, n) for n in nodes]))

    def nearby(x: float, y: float) -> frozenset[Any]:
        _, index = tree.query([x, y], k=NEARBY_NODES, distance_upper_bound=NEARBY_RADIUS_M)
        return frozenset(nodes[i] for i in np.atleast_1d(index) if i < len(nodes))
    return nearby


def insert_control_points(graph: Any, points: list[tuple[Any, float, float]], max_distance: float) -> Any:
    """insert_control_points with renaming: each (id, x, y) in turn into a copy of ``graph``."""
    shapely = _shapely()
    out = graph.copy()
    nearby = _nearby_finder(graph)
    for node_id, x, y in points:
        out = insert_point(out, shapely.Point(x, y), node_id, max_distance, rename=True, nearby=nearby(x, y))
    return out


# --- scoring -------------------------------------------------------------------------------------------


class PathLengths:
    """Shortest path lengths from sources of one graph (SciPy's Dijkstra on its ``length`` weights)."""

    def __init__(self, graph: Any) -> None:
        sparse = require("scipy.sparse", "the APLS metric")
        self.index = {node: i for i, node in enumerate(graph.nodes)}
        weights: dict[tuple[int, int], float] = {}
        for u, v, data in graph.edges(data=True):
            a, b = sorted((self.index[u], self.index[v]))
            if a != b:
                weights[(a, b)] = min(data["length"], weights.get((a, b), math.inf))
        size = len(self.index)
        rows = np.array([k[0] for k in weights], np.int64)
        cols = np.array([k[1] for k in weights], np.int64)
        values = np.fromiter(weights.values(), np.float64, len(weights))
        self.matrix = sparse.csr_array((values, (rows, cols)), shape=(size, size))

    def rows(self, sources: list[Any]) -> np.ndarray:
        """distances[len(sources), nodes] from each source (inf where unreachable)."""
        if not sources:
            return np.empty((0, len(self.index)))
        csgraph = require("scipy.sparse.csgraph", "the APLS metric")
        return csgraph.dijkstra(self.matrix, directed=False, indices=[self.index[s] for s in sources])


def _differences(native: np.ndarray, other: np.ndarray) -> np.ndarray:
    """single_path_metric: min(1, |L - L'| / L), 1 where L' is missing (inf), 0 where L is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.minimum(1.0, np.abs(native - other) / native)
    return np.where(native <= 0, 0.0, np.where(np.isfinite(other), relative, 1.0))


def direction_score(native: Any, controls: list[Any], other: Any, min_path_length: float) -> DirectionScore:
    """path_sim_metric: 1 - mean over (s, t) control pairs of the path-length difference (see the module),
    computed a batch of sources at a time."""
    own, far = PathLengths(native), PathLengths(other)
    own_columns = np.array([own.index[c] for c in controls], np.int64)
    far_present = np.array([c in far.index for c in controls], bool)
    far_columns = np.array([far.index.get(c, 0) for c in controls], np.int64)
    step = max(1, SOURCE_BATCH_CELLS // max(1, len(own.index), len(far.index)))
    total, count = 0.0, 0
    for start in range(0, len(controls), step):
        chunk = controls[start:start + step]
        native_rows = own.rows(chunk)[:, own_columns]
        snapped = [s for s in chunk if s in far.index]
        other_rows = iter(np.where(far_present, far.rows(snapped)[:, far_columns], np.inf))
        for offset, (source, lengths) in enumerate(zip(chunk, native_rows, strict=True)):
            reachable = np.isfinite(lengths)
            if source not in far.index:  # every other reachable target counts 1, whatever its distance
                reachable[start + offset] = False
                total += float(reachable.sum())
                count += int(reachable.sum())
                continue
            keep = reachable & (lengths >= min_path_length)
            total += float(np.sum(_differences(lengths[keep], next(other_rows)[keep])))
            count += int(keep.sum())
    return DirectionScore(1.0 - total / count, count) if count else DirectionScore(0.0, 0)


@dataclass(frozen=True)
class SpacenetScore:
    """Both directions (truth onto proposal = the reference's gt_onto_prop) and the control points used."""

    truth_to_proposal: DirectionScore
    proposal_to_truth: DirectionScore
    truth_control_points: int
    proposal_control_points: int

    @property
    def apls(self) -> float:
        """Harmonic mean of the two directions, 0 if either is 0."""
        a, b = self.truth_to_proposal.score, self.proposal_to_truth.score
        return 2 * a * b / (a + b) if a > 0 and b > 0 else 0.0


def _controls(graph: Any, nodes: Iterable[Any] | None = None) -> list[tuple[Any, float, float]]:
    """(id, x, y) of the given nodes (default: all, in node order): the points inserted into the other graph."""
    return [(n, graph.nodes[n]["x"], graph.nodes[n]["y"]) for n in (graph.nodes if nodes is None else nodes)]


def spacenet_apls(truth_lonlat: list[np.ndarray], proposal_lonlat: list[np.ndarray], *, linestring_delta_m: float,
                  is_curved_eps: float, max_snap_dist_m: float, min_path_length_m: float, max_nodes: int,
                  seed: int) -> SpacenetScore:
    """SpaceNet's APLS of two networks given as lines in WGS 84 lon/lat (see the module for every step)."""
    truth = spacenet_graph(truth_lonlat, TRUTH_FIRST_ID)
    proposal = spacenet_graph(proposal_lonlat, PROPOSAL_FIRST_ID)
    if truth.number_of_nodes() == 0 or proposal.number_of_nodes() == 0:
        return SpacenetScore(DirectionScore(0.0, 0), DirectionScore(0.0, 0), truth.number_of_nodes(),
                             proposal.number_of_nodes())
    if truth.number_of_nodes() < LARGE_TRUTH_NODES:
        truth_cp = with_midpoints(_with_linestrings(truth.to_undirected()).copy(), linestring_delta_m, is_curved_eps)
        proposal = _with_linestrings(proposal.to_undirected()).copy()
        proposal_cp = with_midpoints(proposal.copy(), linestring_delta_m, is_curved_eps)
        truth_points, proposal_points = _controls(truth_cp), _controls(proposal_cp)
    else:
        rng = random.Random(seed)
        for count in (truth.number_of_nodes(), truth.number_of_edges(), proposal.number_of_nodes(),
                      proposal.number_of_edges()):
            rng.randrange(count)  # what execute()'s verbose printing of a random node and edge of each draws first
        truth_cp, proposal_cp = truth.to_undirected(), proposal.to_undirected()
        truth_points = _controls(truth_cp, rng.sample(list(truth_cp.nodes), min(max_nodes, len(truth_cp))))
        proposal_points = _controls(proposal_cp, rng.sample(list(proposal_cp.nodes), min(max_nodes, len(proposal_cp))))
    proposal_prime = insert_control_points(proposal.copy(), truth_points, max_snap_dist_m)
    truth_prime = insert_control_points(truth, proposal_points, max_snap_dist_m)
    forward = direction_score(truth_cp, [p[0] for p in truth_points], proposal_prime, min_path_length_m)
    backward = direction_score(proposal_cp, [p[0] for p in proposal_points], truth_prime, min_path_length_m)
    return SpacenetScore(forward, backward, len(truth_points), len(proposal_points))
