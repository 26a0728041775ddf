"""Synthetic road scenes: textured land cover, curved road networks, and occluders over the roads.

Each scene is textured land cover crossed by a network of curved roads, with tree canopies,
building shadows and clouds drawn over the image (not the mask): recovering a hidden stretch of
road needs context from elsewhere in the image, the case NL-LinkNet's non-local blocks are for.
Shared by the training data generator (``nltool data synth``), the export parity checks, the demo
and the benchmarks, so it lives in the core.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

MIN_SIZE, MAX_SIZE = 32, 4096

# Land-cover classes: (RGB, fine-noise std, blocky "roof" texture amplitude).
LAND_COVER: tuple[tuple[tuple[int, int, int], float, float], ...] = (
    ((176, 168, 110), 6.0, 0.0),  # dry field
    ((122, 150, 78), 7.0, 0.0),  # green field
    ((92, 128, 68), 9.0, 0.0),  # grass
    ((46, 82, 46), 14.0, 0.0),  # forest
    ((152, 118, 84), 8.0, 0.0),  # bare soil
    ((140, 132, 122), 10.0, 28.0),  # urban
)
ROAD_COLOURS: tuple[tuple[int, int, int], ...] = (
    (72, 74, 78),  # dark asphalt
    (104, 104, 108),  # worn asphalt
    (168, 166, 160),  # concrete
    (184, 164, 132),  # dirt track
    (128, 118, 108),  # gravel
)
ROAD_NOISE_STD = 3.0
OCCLUDER_KINDS = ("canopy", "shadow", "cloud")
OCCLUDER_ODDS = (0.5, 0.35, 0.15)
MAX_HIDDEN_ROAD = 0.15
CANOPY_RGB = (42, 78, 40)
CLOUD_RGB = (236, 238, 242)
SHADOW_TINT = (1.0, 1.0, 0.85)  # shadows darken blue a little less: they look slightly bluish


@dataclass(frozen=True)
class _Road:
    """One road: its centre line (pixel coordinates), width in pixels and RGB colour."""

    points: list[tuple[float, float]]
    width: int
    colour: np.ndarray


def scene_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of scene ``index``: depends on (seed, index) only, so scene k never depends on n."""
    return np.random.default_rng(np.random.SeedSequence([seed, index]))


def render_scene(
    size: int, rng: np.random.Generator, *, occluders: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Render one size×size scene: (H×W×3 uint8 RGB image, H×W uint8 mask with road 255, else 0).

    Occluders are drawn last and only on the image, so the mask (and everything drawn before them)
    is the same with ``occluders=False`` for the same generator state.
    """
    image, mask, _ = render_scene_with_roads(size, rng, occluders=occluders)
    return image, mask


def centre_lines(roads: list[_Road]) -> list[np.ndarray]:
    """The roads' centre lines as N×2 (x, y) arrays in pixel coordinates with (0, 0) at the top-left
    corner of the top-left pixel (Pillow draws pixel (i, j) centred on (i, j), so + 0.5). Lines run
    past the image's edge, as the roads do; clip them to [0, size]² to compare with the mask."""
    return [np.asarray(road.points, np.float64) + 0.5 for road in roads]


def render_scene_with_roads(
    size: int, rng: np.random.Generator, *, occluders: bool = True
) -> tuple[np.ndarray, np.ndarray, list[_Road]]:
    """:func:`render_scene` plus the roads drawn (centre line, width, colour): the true road network."""
    ground, noise_std = _land_cover(size, rng)
    roads = _road_network(size, rng)
    labels = _draw_road_labels(size, roads)
    on_road = labels > 0
    palette = np.stack([np.zeros(3, np.float32)] + [road.colour for road in roads])
    image = np.where(on_road[..., None], palette[labels], ground)
    noise_std = np.where(on_road, np.float32(ROAD_NOISE_STD), noise_std)
    image += rng.standard_normal((size, size, 3), dtype=np.float32) * noise_std[..., None]
    if occluders:
        image = _occlude(image, on_road, rng)
    mask = np.where(on_road, np.uint8(255), np.uint8(0))
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), mask, roads


# --- land cover -------------------------------------------------------------------------------


def _smooth_noise(size: int, cells: int, rng: np.random.Generator) -> np.ndarray:
    """A size×size float32 field in about [0, 1] varying smoothly over ``cells`` cells per side."""
    grid = rng.random((cells + 1, cells + 1), dtype=np.float32)
    return np.asarray(Image.fromarray(grid).resize((size, size), Image.Resampling.BICUBIC))


def _blocky_noise(size: int, cells: int, rng: np.random.Generator) -> np.ndarray:
    """A size×size float32 field in [-0.5, 0.5] that is constant on square blocks (roof-like texture)."""
    grid = rng.random((cells, cells), dtype=np.float32) - 0.5
    return np.asarray(Image.fromarray(grid).resize((size, size), Image.Resampling.NEAREST))


def _land_cover(size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Patches of 3-5 land-cover classes with shading and texture: (H×W×3 float32 RGB, H×W noise std)."""
    classes = rng.choice(len(LAND_COVER), size=int(rng.integers(3, 6)), replace=False)
    cells = int(rng.integers(3, 7))
    fields = np.stack([_smooth_noise(size, cells, rng) for _ in classes])
    region = np.argmax(fields, axis=0)
    colours = np.array([LAND_COVER[c][0] for c in classes], np.float32)
    colours += rng.normal(0.0, 8.0, colours.shape).astype(np.float32)
    noise_std = np.array([LAND_COVER[c][1] for c in classes], np.float32)[region]
    blockiness = np.array([LAND_COVER[c][2] for c in classes], np.float32)[region]
    shading = (_smooth_noise(size, max(4, size // 16), rng) - 0.5) * 30.0
    texture = shading + blockiness * _blocky_noise(size, max(4, size // 6), rng)
    return colours[region] + texture[..., None], noise_std


# --- roads ------------------------------------------------------------------------------------


def _road_network(size: int, rng: np.random.Generator) -> list[_Road]:
    """2-6 roads: a wide one across the image, a second crossing it, then more crossings or branches."""
    scale = size / 256
    centre, heading = tuple(rng.uniform(0.3, 0.7, 2) * size), rng.uniform(0, 2 * math.pi)
    roads = [_make_road(_crossing_path(centre, heading, size, rng), rng.uniform(6, 12) * scale, rng)]
    for number in range(1, int(rng.integers(2, 7))):
        point, direction = _junction(roads, size, rng)
        heading = direction + rng.choice([-1.0, 1.0]) * rng.uniform(math.pi / 4, 3 * math.pi / 4)
        if number == 1 or rng.random() < 0.4:
            path = _crossing_path(point, heading, size, rng)
        else:
            path = _walk(point, heading, size, rng.uniform(0.25, 0.8) * size, rng)
        roads.append(_make_road(path, rng.uniform(3, 10) * scale, rng))
    return roads


def _make_road(points: list[tuple[float, float]], width: float, rng: np.random.Generator) -> _Road:
    """A road along ``points``: width rounded (at least 2 px), colour from the palette plus jitter."""
    base = np.array(ROAD_COLOURS[int(rng.integers(len(ROAD_COLOURS)))], np.float32)
    colour = base + rng.normal(0.0, 6.0, 3).astype(np.float32)
    return _Road(points=points, width=max(2, round(width)), colour=colour)


def _junction(roads: list[_Road], size: int, rng: np.random.Generator) -> tuple[tuple[float, float], float]:
    """A point of an existing road inside the image and the road's direction there, for a new junction."""
    points = roads[int(rng.integers(len(roads)))].points
    inside = [i for i in range(1, len(points) - 1) if all(0 <= v <= size for v in points[i])]
    index = inside[int(rng.integers(len(inside)))] if inside else len(points) // 2
    (x0, y0), (x1, y1) = points[index - 1], points[index + 1]
    return points[index], math.atan2(y1 - y0, x1 - x0)


def _crossing_path(
    through: tuple[float, float], heading: float, size: int, rng: np.random.Generator
) -> list[tuple[float, float]]:
    """A path across the whole image through ``through``: walks both ways from it until it leaves."""
    forward = _walk(through, heading, size, 4.0 * size, rng)
    backward = _walk(through, heading + math.pi, size, 4.0 * size, rng)
    return backward[::-1] + forward[1:]


def _walk(
    start: tuple[float, float], heading: float, size: int, length: float, rng: np.random.Generator
) -> list[tuple[float, float]]:
    """A smooth random walk from ``start``; it stays within 55 degrees of ``heading`` so it always
    advances, and stops after ``length`` pixels or once it has left the image."""
    step, curviness = size / 32, rng.uniform(0.02, 0.09)
    x, y = start
    points = [(x, y)]
    turn = deviation = 0.0
    for _ in range(int(length / step) + 1):
        turn = 0.8 * turn + rng.normal(0.0, curviness)
        deviation = float(np.clip(deviation + turn, -0.96, 0.96))
        x, y = x + step * math.cos(heading + deviation), y + step * math.sin(heading + deviation)
        points.append((x, y))
        if not (-step <= x <= size + step and -step <= y <= size + step):
            break
    return points


def _draw_road_labels(size: int, roads: list[_Road]) -> np.ndarray:
    """H×W uint8 map: 0 off road, i + 1 where road i is drawn (later roads over earlier ones)."""
    canvas = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    for number, road in enumerate(roads, start=1):
        draw.line(road.points, fill=number, width=road.width, joint="curve")
    return np.asarray(canvas)


# --- occluders --------------------------------------------------------------------------------


class _Occluders:
    """Alpha layers of tree canopies, building shadows and clouds, and the road pixels they cover.

    An occluder is kept only if the covered share of road pixels stays at most ``limit``.
    """

    def __init__(self, on_road: np.ndarray, limit: float) -> None:
        """Start with empty layers over the scene whose road pixels are ``on_road``."""
        size = on_road.shape[0]
        self.on_road, self.limit, self.road_pixels = on_road, limit, max(1, int(on_road.sum()))
        self.layers = {kind: np.zeros((size, size), np.uint8) for kind in OCCLUDER_KINDS}
        self.covered = np.zeros_like(on_road)

    @property
    def road_share(self) -> float:
        """Fraction of road pixels under some occluder (as drawn, before clouds are softened)."""
        return float(np.count_nonzero(self.covered & self.on_road)) / self.road_pixels

    def add(self, kind: str, shape: np.ndarray) -> None:
        """Merge one occluder (H×W uint8 alpha, 0 = absent) into its layer unless it hides too much road."""
        covered = self.covered | (shape > 0)
        if np.count_nonzero(covered & self.on_road) / self.road_pixels <= self.limit:
            np.maximum(self.layers[kind], shape, out=self.layers[kind])
            self.covered = covered


def _occlude(image: np.ndarray, on_road: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Scatter occluders over the scene, then over roads until 5-13% (at most 15%) of road is hidden."""
    size = image.shape[0]
    occluders = _Occluders(on_road, limit=MAX_HIDDEN_ROAD)
    for _ in range(int(rng.integers(3, 9))):
        kind = _pick_kind(rng)
        occluders.add(kind, _occluder_shape(kind, rng.uniform(0, size, 2), size, rng))
    road_yx = np.argwhere(on_road)
    target = rng.uniform(0.05, 0.13)
    for _ in range(60):
        if occluders.road_share >= target or not len(road_yx):
            break
        kind = _pick_kind(rng)
        centre = road_yx[int(rng.integers(len(road_yx)))][::-1].astype(np.float64)
        occluders.add(kind, _occluder_shape(kind, centre, size, rng))
    return _composite(image, occluders.layers, size, rng)


def _pick_kind(rng: np.random.Generator) -> str:
    """A random occluder kind: canopies most often, clouds least."""
    return OCCLUDER_KINDS[int(rng.choice(len(OCCLUDER_KINDS), p=OCCLUDER_ODDS))]


def _occluder_shape(kind: str, centre: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Draw one occluder of ``kind`` around ``centre`` as an H×W uint8 alpha image (0 = absent)."""
    canvas = Image.new("L", (size, size), 0)
    draw, scale = ImageDraw.Draw(canvas), size / 256
    if kind == "shadow":
        corners = _rotated_rectangle(centre, rng.uniform(8, 28) * scale, rng.uniform(5, 14) * scale, rng)
        draw.polygon(corners, fill=round(rng.uniform(0.45, 0.7) * 255))
    elif kind == "canopy":
        _draw_blob(draw, centre, rng.uniform(3, 9) * scale, int(rng.integers(2, 7)), 255, rng)
    else:
        alpha = round(rng.uniform(0.5, 0.8) * 255)
        _draw_blob(draw, centre, rng.uniform(8, 18) * scale, int(rng.integers(2, 5)), alpha, rng)
    return np.asarray(canvas)


def _draw_blob(
    draw: ImageDraw.ImageDraw,
    centre: np.ndarray,
    radius: float,
    count: int,
    alpha: int,
    rng: np.random.Generator,
) -> None:
    """Draw ``count`` overlapping discs of about ``radius`` near ``centre`` (a crown or a cloud)."""
    for _ in range(count):
        r = radius * rng.uniform(0.7, 1.3)
        cx, cy = centre + rng.uniform(-1.2, 1.2, 2) * radius
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=alpha)


def _rotated_rectangle(
    centre: np.ndarray, length: float, breadth: float, rng: np.random.Generator
) -> list[tuple[float, float]]:
    """Corners of a length×breadth rectangle around ``centre`` turned by a random angle."""
    angle = rng.uniform(0, math.pi)
    along = np.array([math.cos(angle), math.sin(angle)]) * length / 2
    across = np.array([-math.sin(angle), math.cos(angle)]) * breadth / 2
    corners = [centre + along + across, centre + along - across, centre - along - across]
    corners.append(centre - along + across)
    return [(float(x), float(y)) for x, y in corners]


def _composite(
    image: np.ndarray, layers: dict[str, np.ndarray], size: int, rng: np.random.Generator
) -> np.ndarray:
    """Darken under shadows, paint textured canopies, then blend soft white clouds on top."""
    shadow = layers["shadow"].astype(np.float32)[..., None] / 255
    image = image * (1 - shadow * np.array(SHADOW_TINT, np.float32))
    canopy = layers["canopy"].astype(np.float32)[..., None] / 255
    leaves = np.array(CANOPY_RGB, np.float32) + rng.standard_normal((size, size, 1), dtype=np.float32) * 12
    image = image * (1 - canopy) + leaves * canopy
    blur = ImageFilter.GaussianBlur(radius=4 * size / 256)
    cloud = np.asarray(Image.fromarray(layers["cloud"]).filter(blur)).astype(np.float32)[..., None] / 255
    return image * (1 - cloud) + np.array(CLOUD_RGB, np.float32) * cloud
