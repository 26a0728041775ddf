"""Vectorizing a raster by horizontal strips with overlap, and merging the pieces across strip borders.

Each strip's "core" rows are vectorized inside a window that adds ``strip_overlap_m`` of context
above and below, so thinning, spur pruning and end extension see what they would see in the
whole image. Every skeleton line is then cut to its strip's core; a line crossing a core border
leaves a cut point on it, and the cut points of neighbouring strips are paired along that border
and become one node. Joining gaps, dropping short pieces and simplifying run once on the merged
graph. A whole image is one strip with no cuts, so both paths share all the code; memory is
bounded by one window of rows plus the network itself, like ``predict``'s streaming.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from nltool.errors import VectorError
from nltool.optional import require
from nltool.vectors.frame import RasterFrame
from nltool.vectors.network import RoadNetwork, network_from_graph
from nltool.vectors.pixelgraph import clip_graph, drop_short_components, join_gaps, merge_chains
from nltool.vectors.settings import VectorizeSettings
from nltool.vectors.skeleton import Window, window_graph

CUT_MATCH_PX = 2.0
"""Cut points on the same strip border closer than this (pixels along the border) are one point."""


class StripVectorizer:
    """A :class:`~nltool.inference.pipeline.ProbabilitySink` that vectorizes rows as they arrive.

    Feed rows top to bottom with :meth:`write_rows` (probabilities, thresholded here) or
    :meth:`write_road` (boolean road rows), then call :meth:`finish` for the network.
    """

    def __init__(self, frame: RasterFrame, settings: VectorizeSettings | None = None,
                 strip_rows: int | None = None) -> None:
        """Vectorize a ``frame.width`` × ``frame.height`` raster by strips of ``strip_rows`` (default
        ``settings.strip_rows``) rows."""
        self.frame, self.settings = frame, settings or VectorizeSettings()
        self.scale = frame.pixel_scale()
        self.strip_rows = strip_rows or self.settings.strip_rows
        self.overlap = math.ceil(self.scale.pixels(self.settings.strip_overlap_m))
        self.graph = require("networkx", "road network vectorization").MultiGraph()
        self._rows = np.zeros((0, frame.width), bool)
        self._rows_y0 = 0
        self._received = 0
        self._core = 0
        self._cuts: dict[int, list[tuple[float, Any]]] = {}

    def write_rows(self, y0: int, prob: np.ndarray, valid: np.ndarray | None = None) -> None:
        """Rows ``y0..`` of a probability map: road where probability > the threshold and valid."""
        road = prob > self.settings.threshold
        self.write_road(y0, road if valid is None else road & valid)

    def write_road(self, y0: int, road: np.ndarray) -> None:
        """Rows ``y0..`` of a boolean road mask (rows must come in order, without gaps)."""
        if y0 != self._received:
            raise VectorError(f"rows must arrive in order: expected row {self._received}, got {y0}")
        self._rows = np.concatenate([self._rows, road.astype(bool, copy=False)])
        self._received += len(road)
        while self._core < self.frame.height and self._received >= min(self._core_end() + self.overlap,
                                                                        self.frame.height):
            self._vectorize_strip()

    def finish(self) -> RoadNetwork:
        """Merge the strips and clean the whole network: join gaps, drop short pieces, simplify."""
        if self._received != self.frame.height:
            raise VectorError(f"got {self._received} of {self.frame.height} rows; the raster ended early")
        self._pair_cuts()
        merge_chains(self.graph)
        join_gaps(self.graph, self.settings, self.scale)
        drop_short_components(self.graph, self.settings, self.scale)
        merge_chains(self.graph)
        return network_from_graph(self.graph, self.frame, self.settings)

    def _core_end(self) -> int:
        return min(self._core + self.strip_rows, self.frame.height)

    def _vectorize_strip(self) -> None:
        """Vectorize the window around the next core and keep the parts of its lines inside the core."""
        nx = require("networkx", "road network vectorization")
        core0, core1 = self._core, self._core_end()
        win0, win1 = max(0, core0 - self.overlap), min(self.frame.height, core1 + self.overlap)
        road = self._rows[win0 - self._rows_y0:win1 - self._rows_y0]
        window = Window(win0, road, self.frame.height, cut_top=win0 > 0, cut_bottom=win1 < self.frame.height)
        graph = window_graph(window, self.settings, self.scale)
        box = (-math.inf, core0 if core0 > 0 else -math.inf, math.inf, core1 if core1 < self.frame.height else math.inf)
        core = clip_graph(graph, box, lambda n: ("cut", n))
        core = nx.relabel_nodes(core, {node: (core0, node) for node in core.nodes})
        for node, data in core.nodes(data=True):
            data["strip"] = core0
            for border in (core0, core1):
                if 0 < border < self.frame.height and abs(data["xy"][1] - border) <= CUT_MATCH_PX:
                    self._cuts.setdefault(border, []).append((float(data["xy"][0]), node))
        for _, _, data in core.edges(data=True):
            data["start"] = (core0, data["start"])
        self.graph.update(core)
        self._core = core1
        keep_from = max(0, self._core - self.overlap)
        self._rows = self._rows[keep_from - self._rows_y0:]
        self._rows_y0 = keep_from

    def _pair_cuts(self) -> None:
        """Make each pair of points facing each other across a strip border one node: the cut points of
        lines crossing it, and nodes lying on it (which both strips keep)."""
        for points in self._cuts.values():
            used: set[Any] = set()
            pairs = sorted(((abs(a[0] - b[0]), a[1], b[1]) for a, b in itertools.combinations(points, 2)
                            if abs(a[0] - b[0]) <= CUT_MATCH_PX and a[1][0] != b[1][0]), key=lambda p: p[0])
            for _, keep, drop in pairs:
                if keep in used or drop in used or keep not in self.graph or drop not in self.graph:
                    continue
                used.update((keep, drop))
                _contract(self.graph, keep, drop)
        for node in self.graph.nodes:
            self.graph.nodes[node]["cut"] = False


def _contract(graph: Any, keep: Any, drop: Any) -> None:
    """Move every edge of ``drop`` onto ``keep`` (the two points are the same place) and remove ``drop``."""
    for _, other, data in list(graph.edges(drop, data=True)):
        data = dict(data)
        if data["start"] == drop:
            data["start"] = keep
            data["xy"] = np.concatenate([graph.nodes[keep]["xy"][None], data["xy"][1:]])
        else:
            data["xy"] = np.concatenate([data["xy"][:-1], graph.nodes[keep]["xy"][None]])
        graph.add_edge(keep, keep if other == drop else other, **data)
    graph.remove_node(drop)


def vectorize_road(road: np.ndarray, frame: RasterFrame, settings: VectorizeSettings | None = None,
                   strip_rows: int | None = None) -> RoadNetwork:
    """A whole in-memory boolean road mask -> network (by strips if taller than ``strip_rows``)."""
    vectorizer = StripVectorizer(frame, settings, strip_rows)
    vectorizer.write_road(0, road)
    return vectorizer.finish()
