"""City-shaped road networks and their ground-truth masks, for the vectorizer's APLS benchmark.

A scene is a few hundred metres of town at 0.5 m/pixel: a street grid bent into curves, with
some blocks' streets missing (T-junctions), an arterial road across it (in half the scenes a dual
carriageway: two one-way roads either side of a median), a roundabout on a grid crossing, cul-de-sacs
ending in turning circles, and a slip road leaving a street at a shallow angle. Every road runs on
past the image's edge, as real roads do. Widths are those of real roads: streets 6-10 m, arterials
12-20 m, each carriageway of a dual carriageway 7-10 m with a 3-8 m median, roundabouts 8-10 m,
slip roads 7-10 m.

The mask is the roads drawn at their width (round caps, turning circles as disks); the truth is the
roads' centre lines clipped to the image, noded where they meet. Only the benchmarks use this, so
it lives here rather than in ``nltool/``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

PIXEL_SIZE_M = 0.5
"""Metres per pixel of every scene."""
MARGIN_M = 120.0
"""Roads are generated this far past the image's edge, so they leave it as real roads do."""


@dataclass(frozen=True)
class CityRoad:
    """One road: centre line (N×2, pixels, (0, 0) the top-left corner of the image), width in pixels,
    and the radius in pixels of the turning circle at its last point (0: none)."""

    xy: np.ndarray
    width_px: float
    bulb_px: float = 0.0


def _px(metres: float) -> float:
    return metres / PIXEL_SIZE_M


def _shapely():  # type: ignore[no-untyped-def]
    import shapely

    return shapely


def _grid(size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Two families of streets crossing at 70-110°, each line bent by a slow sine, spanning the margin."""
    extent = size + 2 * _px(MARGIN_M)
    centre = np.array([size / 2, size / 2])
    theta = rng.uniform(0, math.pi)
    lines = []
    for family, angle in enumerate((theta, theta + math.radians(rng.uniform(70, 110)))):
        along = np.array([math.cos(angle), math.sin(angle)])
        across = np.array([-along[1], along[0]])
        spacing = _px(rng.uniform(90, 170))
        offsets = np.arange(-extent / 2, extent / 2, spacing) + rng.uniform(0, spacing)
        for offset in offsets:
            t = np.linspace(-extent * 0.75, extent * 0.75, 120)
            amplitude = _px(rng.uniform(0, 25)) if family == 0 or rng.random() < 0.5 else 0.0
            wavelength = _px(rng.uniform(250, 600))
            bend = amplitude * np.sin(2 * math.pi * t / wavelength + rng.uniform(0, 2 * math.pi))
            lines.append(centre + np.outer(t, along) + np.outer(offset + bend, across))
    return lines


def _split_at_crossings(lines: list[np.ndarray], rng: np.random.Generator, drop: float) -> list[np.ndarray]:
    """Cut every line where others cross it and drop a share ``drop`` of the pieces (missing blocks
    make T-junctions and L-bends)."""
    shapely = _shapely()
    noded = shapely.node(shapely.MultiLineString([shapely.LineString(line) for line in lines]))
    return [np.asarray(piece.coords) for piece in noded.geoms if rng.random() >= drop]


def _arterial(size: int, rng: np.random.Generator) -> np.ndarray:
    """A smooth curve across the whole scene (a quadratic Bezier between two far sides)."""
    extent = _px(MARGIN_M)
    start_angle = rng.uniform(0, 2 * math.pi)
    radius = size / 2 + extent
    centre = np.array([size / 2, size / 2])
    a = centre + radius * np.array([math.cos(start_angle), math.sin(start_angle)])
    end_angle = start_angle + math.pi + rng.uniform(-0.5, 0.5)
    b = centre + radius * np.array([math.cos(end_angle), math.sin(end_angle)])
    control = centre + rng.uniform(-0.25, 0.25, 2) * size
    t = np.linspace(0, 1, 200)[:, None]
    return (1 - t) ** 2 * a + 2 * (1 - t) * t * control + t ** 2 * b


def _roundabout(lines: list[tuple[np.ndarray, float]], size: int, rng: np.random.Generator
                ) -> tuple[list[tuple[np.ndarray, float]], list[tuple[np.ndarray, float]]]:
    """Replace the grid crossing nearest the image's centre by a roundabout: the roads stop at a ring of
    radius 15-25 m, drawn as arcs between the points where they meet it. Returns (roads, ring arcs)."""
    shapely = _shapely()
    geoms = [shapely.LineString(xy) for xy, _ in lines]
    crossings = []
    for a, b in itertools.combinations(geoms, 2):
        meet = a.intersection(b)
        for point in getattr(meet, "geoms", [meet]):
            if isinstance(point, shapely.Point) and not point.is_empty:
                crossings.append(np.array(point.coords[0]))
    if not crossings:
        return lines, []
    target = np.array([size / 2, size / 2]) + rng.uniform(-0.2, 0.2, 2) * size
    centre = min(crossings, key=lambda p: float(np.hypot(*(p - target))))
    radius = _px(rng.uniform(15, 25))
    disk = shapely.Point(centre).buffer(radius, 256)
    kept, angles = [], []
    for geom, (_, width) in zip(geoms, lines, strict=True):
        if not geom.intersects(disk):
            kept.append((np.asarray(geom.coords), width))
            continue
        rest = geom.difference(disk)
        for piece in getattr(rest, "geoms", [rest]):
            xy = np.asarray(piece.coords)
            for end in (0, -1):
                offset = xy[end] - centre
                if abs(math.hypot(*offset) - radius) < 1.0:
                    angle = math.atan2(offset[1], offset[0])
                    xy[end] = centre + radius * np.array([math.cos(angle), math.sin(angle)])
                    angles.append(angle)
            kept.append((xy, width))
    ring_width = _px(rng.uniform(8, 10))
    angles = sorted(angles)
    arcs = []
    for a, b in zip(angles, [*angles[1:], angles[0] + 2 * math.pi], strict=True):
        t = np.linspace(a, b, max(3, int((b - a) * radius / 4)))
        t[0], t[-1] = a, b
        arc = centre + radius * np.stack([np.cos(t), np.sin(t)], axis=1)
        arc[0] = centre + radius * np.array([math.cos(a), math.sin(a)])
        arc[-1] = centre + radius * np.array([math.cos(b), math.sin(b)])
        arcs.append((arc, ring_width))
    return kept, arcs


def _branch(parent: np.ndarray, size: int, rng: np.random.Generator, angle_deg: float, length_m: float,
            curve: float) -> np.ndarray:
    """A road leaving ``parent`` at a point inside the image, ``angle_deg`` off its direction, bending by
    ``curve`` radians per 100 m."""
    inside = np.flatnonzero(((parent > 0.15 * size) & (parent < 0.85 * size)).all(axis=1))
    inside = inside[(inside > 0) & (inside < len(parent) - 1)]
    if not inside.size:
        return np.zeros((0, 2))
    index = int(rng.choice(inside))
    heading = math.atan2(*(parent[index + 1] - parent[index - 1])[::-1])
    heading += rng.choice([-1.0, 1.0]) * math.radians(angle_deg)
    step = _px(2.0)
    points = [parent[index]]
    for _ in range(int(length_m / 2.0)):
        heading += curve * 2.0 / 100
        points.append(points[-1] + step * np.array([math.cos(heading), math.sin(heading)]))
    return np.array(points)


def city_scene(size: int, rng: np.random.Generator) -> tuple[np.ndarray, list[CityRoad]]:
    """One size×size scene: (H×W bool road mask, the roads drawn)."""
    shapely = _shapely()
    streets = [(xy, _px(rng.uniform(6, 10))) for xy in _split_at_crossings(_grid(size, rng), rng, 0.2)]
    artery = _arterial(size, rng)
    if rng.random() < 0.5:
        carriageway, median = _px(rng.uniform(7, 10)), _px(rng.uniform(3, 8))
        offset = (carriageway + median) / 2
        line = shapely.LineString(artery)
        arteries = [(np.asarray(line.offset_curve(side * offset).coords), carriageway) for side in (-1, 1)]
    else:
        arteries = [(artery, _px(rng.uniform(12, 20)))]
    streets, ring = _roundabout(streets, size, rng)
    roads = [CityRoad(xy, width) for xy, width in streets + arteries + ring]
    parents = [road.xy for road in roads if len(road.xy) > 2]
    for _ in range(int(rng.integers(2, 5))):  # cul-de-sacs
        xy = _branch(parents[int(rng.integers(len(parents)))], size, rng, rng.uniform(60, 90),
                     rng.uniform(40, 90), rng.uniform(-0.6, 0.6))
        if len(xy):
            roads.append(CityRoad(xy, _px(rng.uniform(6, 7)), _px(rng.uniform(9, 12))))
    for _ in range(int(rng.integers(1, 3))):  # slip roads at a shallow angle
        xy = _branch(parents[int(rng.integers(len(parents)))], size, rng, rng.uniform(20, 35),
                     rng.uniform(120, 300), rng.uniform(-0.3, 0.3))
        if len(xy):
            roads.append(CityRoad(xy, _px(rng.uniform(7, 10))))
    return _draw(size, roads), roads


def _draw(size: int, roads: list[CityRoad]) -> np.ndarray:
    """The roads buffered to their width (round joints and caps), turning circles as disks, filled
    (Pillow fills pixel (i, j) when its centre, (i + 0.5, j + 0.5) in our coordinates, is inside)."""
    shapely = _shapely()
    shapes = [shapely.LineString(road.xy).buffer(road.width_px / 2, quad_segs=16) for road in roads]
    shapes += [shapely.Point(road.xy[-1]).buffer(road.bulb_px, quad_segs=16) for road in roads if road.bulb_px]
    union = shapely.union_all(shapes).intersection(shapely.box(-2, -2, size + 2, size + 2))
    image = Image.new("1", (size, size), 0)
    draw = ImageDraw.Draw(image)
    for polygon in getattr(union, "geoms", [union]):
        if polygon.is_empty or polygon.geom_type != "Polygon":
            continue
        draw.polygon([tuple(p) for p in np.asarray(polygon.exterior.coords) - 0.5], fill=1)
        for hole in polygon.interiors:
            draw.polygon([tuple(p) for p in np.asarray(hole.coords) - 0.5], fill=0)
    return np.asarray(image, bool)


def truth_lines(roads: list[CityRoad], size: int) -> list[np.ndarray]:
    """The roads' centre lines clipped to the image, in pixels, noded: cut wherever two lines cross or
    one ends on another, so each line runs from junction to junction, as in SpaceNet's truth files
    (a graph built from the lines' end points, as the reference APLS builds it, then has every junction)."""
    shapely = _shapely()
    geoms = [shapely.LineString(road.xy) for road in roads]
    ends = shapely.MultiPoint([p for g in geoms for p in (g.coords[0], g.coords[-1])])
    snapped = [shapely.snap(geom, ends, 0.01) for geom in geoms]  # a line ending on another meets a vertex of it
    clipped = shapely.clip_by_rect(shapely.node(shapely.MultiLineString(snapped)), 0, 0, size, size)
    return [np.asarray(piece.coords) for piece in getattr(clipped, "geoms", [clipped])
            if not piece.is_empty and piece.length > 0]
