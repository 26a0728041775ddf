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
from nltool.vectors.pixelgraph import drop_short_components, join_gaps, merge_chains
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
        core0, core1 = self._core, self._core_end()
        win0, win1 = max(0, core0 - self.overlap), min(self.frame.height, core1 + self.overlap)
        road = self._rows[win0 - self._rows_y0:win1 - self._rows_y0]
        window = Window(win0, road, self.frame.height, cut_top=win0 > 0, cut_bottom=win1 < self.frame.height)
        graph = window_graph(window, self.settings, self.scale)
        strip = core0
        lower = core0 if core0 > 0 else -math.inf
        upper = core1 if core1 < self.frame.height else math.inf
        for u, v, key, data in graph.edges(keys=True, data=True):
            for number, (xy, dt, start_cut, end_cut) in enumerate(_clip_to_rows(data["xy"], data["dt"], lower, upper)):
                ends = []
                for at_start, was_cut in ((True, start_cut), (False, end_cut)):
                    point = xy[0] if at_start else xy[-1]
                    if was_cut:
                        node = ("cut", strip, u, v, key, number, at_start)
                        self._cuts.setdefault(round(point[1]), []).append((float(point[0]), node))
                        self.graph.add_node(node, xy=point, cut=True)
                    else:
                        original = data["start"] if at_start else (v if data["start"] == u else u)
                        node = (strip, original)
                        self.graph.add_node(node, xy=point, cut=False)
                    ends.append(node)
                self.graph.add_edge(ends[0], ends[1], xy=xy, dt=dt, start=ends[0])
        self._core = core1
        keep_from = max(0, self._core - self.overlap)
        self._rows = self._rows[keep_from - self._rows_y0:]
        self._rows_y0 = keep_from

    def _pair_cuts(self) -> None:
        """Make each pair of cut points facing each other across a strip border one node."""
        for points in self._cuts.values():
            points.sort(key=lambda p: p[0])
            used: set[Any] = set()
            pairs = sorted(((abs(a[0] - b[0]), a[1], b[1]) for a, b in itertools.combinations(points, 2)
                            if abs(a[0] - b[0]) <= CUT_MATCH_PX and a[1][1] != b[1][1]), key=lambda p: p[0])
            for _, keep, drop in pairs:
                if keep in used or drop in used:
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
        graph.add_edge(keep, keep if other == drop else other, **data)
    graph.remove_node(drop)


def _clip_to_rows(xy: np.ndarray, dt: np.ndarray, lower: float, upper: float
                  ) -> list[tuple[np.ndarray, np.ndarray, bool, bool]]:
    """The parts of a polyline with ``lower <= y < upper``: (xy, dt, starts at a cut, ends at a cut)."""
    inside = (xy[:, 1] >= lower) & (xy[:, 1] < upper)
    if inside.all():
        return [(xy, dt, False, False)]
    pieces: list[tuple[np.ndarray, np.ndarray, bool, bool]] = []
    current: list[int] | None = None
    entry: np.ndarray | None = None
    for i in range(len(xy)):
        if inside[i] and current is None:
            current, entry = [i], (_crossing(xy[i - 1], xy[i], lower, upper) if i > 0 else None)
        elif inside[i]:
            current.append(i)  # type: ignore[union-attr]
        elif current is not None:
            pieces.append(_piece(xy, dt, current, entry, _crossing(xy[i - 1], xy[i], lower, upper)))
            current = None
    if current is not None:
        pieces.append(_piece(xy, dt, current, entry, None))
    return pieces


def _crossing(a: np.ndarray, b: np.ndarray, lower: float, upper: float) -> np.ndarray:
    """Where segment a-b crosses the row border between an inside and an outside point."""
    border = lower if min(a[1], b[1]) < lower else upper
    t = (border - a[1]) / (b[1] - a[1])
    return np.array([a[0] + t * (b[0] - a[0]), border])


def _piece(xy: np.ndarray, dt: np.ndarray, indices: list[int], entry: np.ndarray | None,
           exit_: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, bool, bool]:
    """A clipped part of a polyline, with its cut points added at either end."""
    parts, samples = [xy[indices]], [dt[indices]]
    if entry is not None:
        parts.insert(0, entry[None])
        samples.insert(0, [np.nan])
    if exit_ is not None:
        parts.append(exit_[None])
        samples.append([np.nan])
    points = np.concatenate(parts)
    keep = np.concatenate([[True], np.any(np.diff(points, axis=0) != 0, axis=1)])  # drop repeated points
    return points[keep], np.concatenate(samples)[keep], entry is not None, exit_ is not None


def vectorize_road(road: np.ndarray, frame: RasterFrame, settings: VectorizeSettings | None = None,
                   strip_rows: int | None = None) -> RoadNetwork:
    """A whole in-memory boolean road mask -> network (by strips if taller than ``strip_rows``)."""
    vectorizer = StripVectorizer(frame, settings, strip_rows)
    vectorizer.write_road(0, road)
    return vectorizer.finish()
