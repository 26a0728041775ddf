"""Road-network pairs shaped like real city tiles, for checking nltool's APLS against SpaceNet's reference.

    python -m benchmarks.apls_fixtures --out tests/data/apls            # the fixture set (9 pairs)
    python -m benchmarks.apls_fixtures --tile 2000 --out /tmp/city2km   # one 2 km x 2 km tile pair

A *truth* is an OSM-like street network in a square tile: a perturbed grid of streets (blocks 70-170 m)
sharing a vertex at every junction, some of them curved (a vertex every ~12 m), blocks left out,
cul-de-sacs, a roundabout, a curved avenue crossing on a bridge (no shared vertex), all clipped to the
tile. Its *proposal* is what a road extractor might return: the same network re-sampled and jittered
(junctions move together), with a pair-specific mix of gaps, detours, spurs, missing and extra roads,
roads shifted beyond the 4 m snap distance and displaced junctions. Files are GeoJSON as nltool writes
them: WGS 84 at 7 decimals (UTM 11N around Las Vegas), or one pair in nltool's pixel coordinates and one
with a legacy ``crs`` member in UTM, so every input path of ``nltool apls`` is exercised.
"""

from __future__ import annotations

import argparse
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

UTM_EPSG = 32611
"""Tiles are placed in WGS 84 / UTM 11N ..."""
ORIGIN_M = (661000.0, 4003000.0)
"""... with their south-west corner here (Las Vegas, where SpaceNet's Vegas tiles are)."""
DECIMALS = 7
"""GeoJSON coordinates are rounded as nltool writes them."""
PIXEL_SIZE_M = 0.5


@dataclass
class Network:
    """Lines in local metres (x east, y north, origin at the tile's south-west corner)."""

    lines: list[np.ndarray] = field(default_factory=list)

    def add(self, *points: tuple[float, float] | np.ndarray) -> None:
        """A line through the points (needs two distinct ones)."""
        line = np.asarray(points, np.float64)
        if len(line) >= 2:
            self.lines.append(line)


def _curve(a: np.ndarray, b: np.ndarray, bulge: float, step: float = 12.0) -> np.ndarray:
    """Points from a to b along a circular-ish arc bulging ``bulge`` metres sideways (a straight segment
    when bulge is 0), about ``step`` apart, a and b included exactly."""
    length = float(np.linalg.norm(b - a))
    if bulge == 0 or length < 2 * step:
        return np.array([a, b])
    t = np.linspace(0, 1, max(3, int(length // step) + 1))
    normal = np.array([-(b - a)[1], (b - a)[0]]) / length
    points = a + np.outer(t, b - a) + np.outer(4 * bulge * t * (1 - t), normal)
    points[0], points[-1] = a, b
    return points


def city(rng: np.random.Generator, tile: float, blocks: tuple[float, float] = (70.0, 170.0)) -> Network:
    """An OSM-like street network filling a ``tile`` × ``tile`` m square, blocks of ``blocks`` m (see the module)."""
    xs = np.cumsum(rng.uniform(*blocks, 64)) - rng.uniform(0, 60)
    ys = np.cumsum(rng.uniform(*blocks, 64)) - rng.uniform(0, 60)
    xs, ys = xs[xs < tile + 60], ys[ys < tile + 60]
    junction = {(i, j): np.array([x + rng.normal(0, 6), y + rng.normal(0, 6)])
                for i, x in enumerate(xs) for j, y in enumerate(ys)}
    net = Network()
    for horizontal in (True, False):
        for street in range(len(ys) if horizontal else len(xs)):
            keys = [(i, street) if horizontal else (street, i) for i in range(len(xs) if horizontal else len(ys))]
            bulge = rng.choice([0.0, 0.0, rng.uniform(-12, 12)])
            run: list[np.ndarray] = []
            for a, b in itertools.pairwise(keys):
                if rng.random() < 0.12:  # a block left out: the street is two OSM ways
                    net.add(*run) if run else None
                    run = []
                    continue
                piece = _curve(junction[a], junction[b], bulge * rng.uniform(0.5, 1.5))
                run = [*run[:-1], *piece] if run else list(piece)
            if run:
                net.add(*run)
    for _ in range(int(tile / 60)):  # cul-de-sacs from junctions
        start = junction[list(junction)[rng.integers(len(junction))]]
        angle = rng.uniform(0, 2 * np.pi)
        end = start + rng.uniform(30, 70) * np.array([np.cos(angle), np.sin(angle)])
        net.add(*_curve(start, end, rng.uniform(-6, 6)))
    centre = np.array([tile * rng.uniform(0.3, 0.7), tile * rng.uniform(0.3, 0.7)])
    ring = [centre + 18 * np.array([np.cos(t), np.sin(t)]) for t in np.linspace(0, 2 * np.pi, 13)[:-1]]
    net.add(*ring, ring[0])
    for t in (0, 4, 8):
        net.add(ring[t], ring[t] + 60 * (ring[t] - centre) / 18)
    net.add(*_curve(np.array([-50.0, tile * 0.2]), np.array([tile + 50.0, tile * 0.8]), tile * 0.08, 20.0))
    return clip(net, tile)


def clip(net: Network, tile: float) -> Network:
    """The network cut to the tile, as a SpaceNet tile cuts roads leaving the image."""
    import shapely

    out = Network()
    box = shapely.box(0, 0, tile, tile)
    for line in net.lines:
        part = shapely.intersection(shapely.LineString(line), box)
        for piece in getattr(part, "geoms", [part]):
            if isinstance(piece, shapely.LineString) and not piece.is_empty and piece.length > 1:
                out.add(*np.asarray(piece.coords))
    return out


# --- proposals -----------------------------------------------------------------------------------------


def _shared_vertices(net: Network) -> set[tuple[float, float]]:
    """Vertices that are line ends or appear more than once: the junctions and ends a re-sampling keeps."""
    seen: dict[tuple[float, float], int] = {}
    for line in net.lines:
        for p in line.tolist():
            seen[(p[0], p[1])] = seen.get((p[0], p[1]), 0) + 1
    ends = {(float(line[i][0]), float(line[i][1])) for line in net.lines for i in (0, -1)}
    return {k for k, n in seen.items() if n > 1} | ends


def _resample(part: np.ndarray, spacing: float, rng: np.random.Generator) -> np.ndarray:
    """The inner points of a polyline re-sampled about every ``spacing`` m (its ends left out)."""
    lengths = np.concatenate([[0], np.cumsum(np.linalg.norm(np.diff(part, axis=0), axis=1))])
    inner = np.arange(spacing * rng.uniform(0.3, 1.0), lengths[-1] - spacing / 2, spacing)
    return np.column_stack([np.interp(inner, lengths, part[:, k]) for k in (0, 1)])


def jitter(net: Network, rng: np.random.Generator, sigma: float, spacing: float) -> Network:
    """Re-sampled about every ``spacing`` m between junctions and ends (which are kept) and every point
    moved by N(0, sigma): shared vertices, hence junctions, move together."""
    keep = _shared_vertices(net)
    moved: dict[tuple[float, float], np.ndarray] = {}

    def move(p: np.ndarray) -> np.ndarray:
        key = (float(p[0]), float(p[1]))
        if key not in moved:
            moved[key] = p + rng.normal(0, sigma, 2)
        return moved[key]

    out = Network()
    for line in net.lines:
        cuts = [i for i, p in enumerate(line.tolist()) if (p[0], p[1]) in keep]
        points = [move(line[0])]
        for a, b in itertools.pairwise(cuts):
            points.extend(p + rng.normal(0, sigma, 2) for p in _resample(line[a:b + 1], spacing, rng))
            points.append(move(line[b]))
        out.add(*points)
    return out


def _pick(net: Network, rng: np.random.Generator, count: int, min_length: float = 60.0) -> list[int]:
    long = [i for i, line in enumerate(net.lines) if np.linalg.norm(np.diff(line, axis=0), axis=1).sum() > min_length]
    return sorted(rng.choice(long, size=min(count, len(long)), replace=False).tolist())


def _cut(line: np.ndarray, start: float, end: float) -> tuple[np.ndarray, np.ndarray]:
    """The parts of a line before ``start`` and after ``end`` metres along it."""
    lengths = np.concatenate([[0], np.cumsum(np.linalg.norm(np.diff(line, axis=0), axis=1))])

    def at(d: float) -> np.ndarray:
        return np.array([np.interp(d, lengths, line[:, 0]), np.interp(d, lengths, line[:, 1])])

    before = np.vstack([line[lengths < start], at(start)])
    after = np.vstack([at(end), line[lengths > end]])
    return before, after


def gaps(net: Network, rng: np.random.Generator, count: int) -> Network:
    """Roads broken by a 8-30 m gap (a tree, a shadow)."""
    chosen = set(_pick(net, rng, count))
    out = Network()
    for i, line in enumerate(net.lines):
        if i in chosen:
            length = np.linalg.norm(np.diff(line, axis=0), axis=1).sum()
            start = rng.uniform(0.2, 0.6) * length
            before, after = _cut(line, start, start + rng.uniform(8, 30))
            out.add(*before)
            out.add(*after)
        else:
            out.add(*line)
    return out


def detours(net: Network, rng: np.random.Generator, count: int) -> Network:
    """A 30-60 m stretch of some roads replaced by a bulge 6-15 m to the side."""
    chosen = set(_pick(net, rng, count, 90.0))
    out = Network()
    for i, line in enumerate(net.lines):
        if i in chosen:
            length = np.linalg.norm(np.diff(line, axis=0), axis=1).sum()
            start = rng.uniform(0.2, 0.5) * length
            before, after = _cut(line, start, start + rng.uniform(30, 60))
            bend = _curve(before[-1], after[0], rng.choice([-1, 1]) * rng.uniform(6, 15), 5.0)
            out.add(*before[:-1], *bend, *after[1:])
        else:
            out.add(*line)
    return out


def spurs(net: Network, rng: np.random.Generator, count: int) -> Network:
    """Short dead ends (10-35 m) leaving roads at one of their vertices (driveways, skeleton spurs)."""
    out = Network(list(net.lines))
    for i in _pick(net, rng, count, 40.0):
        line = net.lines[i]
        if len(line) < 3:
            continue
        at = line[rng.integers(1, len(line) - 1)]
        angle = rng.uniform(0, 2 * np.pi)
        out.add(at, at + rng.uniform(10, 35) * np.array([np.cos(angle), np.sin(angle)]))
    return out


def missing(net: Network, rng: np.random.Generator, count: int) -> Network:
    """Roads the extractor did not find."""
    gone = set(_pick(net, rng, count, 30.0))
    return Network([line for i, line in enumerate(net.lines) if i not in gone])


def extra(net: Network, rng: np.random.Generator, count: int, tile: float) -> Network:
    """Roads that are not in the truth: parking aisles, tracks (some crossing others without a junction)."""
    out = Network(list(net.lines))
    for _ in range(count):
        start = rng.uniform(0.05, 0.95, 2) * tile
        angle = rng.uniform(0, 2 * np.pi)
        out.add(*_curve(start, start + rng.uniform(40, 120) * np.array([np.cos(angle), np.sin(angle)]),
                        rng.uniform(-10, 10)))
    return out


def shifted(net: Network, rng: np.random.Generator, count: int) -> Network:
    """Whole roads drawn 5-9 m to the side: beyond the 4 m snap distance."""
    chosen = set(_pick(net, rng, count, 40.0))
    out = Network()
    for i, line in enumerate(net.lines):
        if i in chosen:
            direction = line[-1] - line[0]
            normal = np.array([-direction[1], direction[0]]) / max(1e-9, float(np.linalg.norm(direction)))
            out.add(*(line + rng.uniform(5, 9) * normal))
        else:
            out.add(*line)
    return out


def displaced_junctions(net: Network, rng: np.random.Generator, count: int) -> Network:
    """Some junctions moved 3-7 m (every line through them follows)."""
    ends: dict[tuple[float, float], int] = {}
    for line in net.lines:
        for p in (line[0], line[-1]):
            ends[(float(p[0]), float(p[1]))] = ends.get((float(p[0]), float(p[1])), 0) + 1
    shared = [k for k, n in ends.items() if n >= 3]
    chosen = [shared[i] for i in rng.choice(len(shared), size=min(count, len(shared)), replace=False)] if shared else []
    offset = {k: rng.uniform(3, 7) * np.array([np.cos(a), np.sin(a)])
              for k, a in zip(chosen, rng.uniform(0, 2 * np.pi, len(chosen)), strict=True)}
    out = Network()
    for line in net.lines:
        moved = line.copy()
        for index in (0, -1):
            moved[index] = line[index] + offset.get((float(line[index][0]), float(line[index][1])), 0)
        out.add(*moved)
    return out


@dataclass(frozen=True)
class Pair:
    """One fixture: a tile seed, its size, how the proposal is damaged, and the file format."""

    name: str
    seed: int
    damage: Callable[[Network, np.random.Generator, float], Network]
    tile: float = 900.0
    fmt: str = "wgs84"
    blocks: tuple[float, float] = (70.0, 170.0)


def _mix(**counts: int) -> Callable[[Network, np.random.Generator, float], Network]:
    """A proposal: jitter then the given damage, in a fixed order."""
    def damage(net: Network, rng: np.random.Generator, tile: float) -> Network:
        net = missing(net, rng, counts.get("missing", 0))
        net = shifted(net, rng, counts.get("shifted", 0))
        net = displaced_junctions(net, rng, counts.get("junctions", 0))
        net = detours(net, rng, counts.get("detours", 0))
        net = gaps(net, rng, counts.get("gaps", 0))
        net = jitter(net, rng, counts.get("sigma_dm", 8) / 10, counts.get("spacing", 15))
        net = spurs(net, rng, counts.get("spurs", 0))
        return extra(net, rng, counts.get("extra", 0), tile)
    return damage


PAIRS = [
    Pair("near_perfect", 1, _mix(sigma_dm=5)),
    Pair("gaps_and_spurs", 2, _mix(gaps=8, spurs=10)),
    Pair("detours", 3, _mix(detours=8, sigma_dm=10)),
    Pair("missing_and_extra", 4, _mix(missing=8, extra=6)),
    Pair("shifted_roads", 5, _mix(shifted=6, junctions=6)),
    Pair("everything", 6, _mix(gaps=5, spurs=6, detours=4, missing=5, extra=4, shifted=3, junctions=4, sigma_dm=12),
         1300.0),
    Pair("pixels", 7, _mix(gaps=4, detours=3, missing=3, extra=3, sigma_dm=8), 500.0, "pixel"),
    Pair("utm_crs", 8, _mix(gaps=4, spurs=4, missing=4, junctions=4, sigma_dm=10), fmt="utm"),
    Pair("large_sampled", 9, _mix(gaps=6, spurs=6, detours=4, missing=6, extra=5, shifted=3, junctions=5, sigma_dm=8),
         1100.0, blocks=(30.0, 65.0)),  # over 500 truth nodes: the reference's sampled path (make_graphs_yuge)
]


def to_geojson(net: Network, fmt: str, tile: float) -> dict:
    """The lines as nltool writes GeoJSON: WGS 84 (7 decimals), pixels (nltool member) or legacy UTM crs."""
    import pyproj

    if fmt == "pixel":
        lines = [np.round(np.column_stack([line[:, 0], tile - line[:, 1]]) / PIXEL_SIZE_M, 3) for line in net.lines]
        extra_members: dict[str, Any] = {"nltool": {"coordinates": "pixel",
                                                    "pixel_size_m": [PIXEL_SIZE_M, PIXEL_SIZE_M]}}
    elif fmt == "utm":
        lines = [np.round(line + ORIGIN_M, 3) for line in net.lines]
        extra_members = {"crs": {"type": "name", "properties": {"name": f"urn:ogc:def:crs:EPSG::{UTM_EPSG}"}}}
    else:
        transformer = pyproj.Transformer.from_crs(UTM_EPSG, 4326, always_xy=True)
        lines = [np.round(np.column_stack(transformer.transform(*(line + ORIGIN_M).T)), DECIMALS) for line in net.lines]
        extra_members = {}
    features = [{"type": "Feature", "properties": {"layer": "roads"},
                 "geometry": {"type": "LineString", "coordinates": line.tolist()}} for line in lines]
    return {"type": "FeatureCollection", **extra_members, "features": features}


def write_pair(pair: Pair, out: Path) -> tuple[Path, Path]:
    """Write ``<name>_truth.geojson`` and ``<name>_proposal.geojson`` into ``out``."""
    rng = np.random.default_rng(pair.seed)
    truth = city(rng, pair.tile, pair.blocks)
    proposal = clip(pair.damage(truth, rng, pair.tile), pair.tile)
    paths = out / f"{pair.name}_truth.geojson", out / f"{pair.name}_proposal.geojson"
    for net, path in zip((truth, proposal), paths, strict=True):
        path.write_text(json.dumps(to_geojson(net, pair.fmt, pair.tile), separators=(",", ":")))
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder to write the pairs into")
    parser.add_argument("--tile", type=float, help="write one pair of this tile size (m) instead of the set")
    parser.add_argument("--seed", type=int, default=0, help="seed of that one pair")
    parser.add_argument("--blocks", type=float, nargs=2, default=(70.0, 170.0), metavar=("MIN", "MAX"),
                        help="block sides (m) of that one pair's street grid")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    damage = _mix(gaps=10, spurs=10, detours=6, missing=8, extra=8, shifted=4, junctions=6)
    pairs = [Pair(f"city{int(args.tile)}m", args.seed, damage, args.tile, blocks=tuple(args.blocks))] \
        if args.tile else PAIRS
    for pair in pairs:
        truth, proposal = write_pair(pair, args.out)
        print(f"{pair.name}: {truth} ({truth.stat().st_size // 1024} KiB), {proposal}")


if __name__ == "__main__":
    main()
