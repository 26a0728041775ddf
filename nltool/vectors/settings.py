"""Vectorization and APLS settings: every threshold in metres (or degrees), converted with the raster's pixel size.

The defaults suit 0.3-1 m imagery (DeepGlobe is 0.5 m): roads are 3-30 m wide, so blobs under
40 m² are noise, skeleton branches reaching under 6 m out of the road they leave are corners of
wide roads rather than driveways (and two junctions joined by less than 6 m of road outside them
are one crossing), and two road ends less than 10 m apart that point at each other are one road
broken by a tree or a shadow.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from nltool.errors import VectorError

DEFAULT_PIXEL_SIZE_M = 0.5
"""Metres per pixel assumed for images without georeferencing (DeepGlobe's ground sampling distance)."""


@dataclass(frozen=True)
class VectorizeSettings:
    """How a probability map or mask becomes a road network.

    ``threshold``: road where probability > threshold (binary masks: any non-zero pixel).
    ``min_object_m2`` / ``max_hole_m2``: road blobs smaller than this are dropped, holes in roads
    smaller than this are filled. ``spur_m``: skeleton branches from a junction to a dead end
    reaching less than this beyond the junction's road (their length less the road's half width
    at the junction) are pruned, and junctions linked by less than this outside their own road
    disks are merged into one. ``gap_m`` / ``gap_angle_deg``: two dead ends closer than
    ``gap_m`` whose directions both point at the other within ``gap_angle_deg`` are joined.
    ``min_component_m``: connected pieces of network shorter than this in total are dropped.
    ``simplify_m``: Douglas-Peucker tolerance of the final lines. ``strip_rows`` /
    ``strip_overlap_m``: large rasters are vectorized by horizontal strips of this many rows,
    each seeing this much context above and below, and the pieces are merged.
    """

    threshold: float = 0.5
    min_object_m2: float = 40.0
    max_hole_m2: float = 40.0
    spur_m: float = 6.0
    gap_m: float = 10.0
    gap_angle_deg: float = 30.0
    min_component_m: float = 20.0
    simplify_m: float = 1.0
    strip_rows: int = 1024
    strip_overlap_m: float = 40.0

    def __post_init__(self) -> None:
        problems = []
        if not 0.0 <= self.threshold < 1.0:
            problems.append(f"threshold must be in [0, 1), got {self.threshold}")
        for name in ("min_object_m2", "max_hole_m2", "spur_m", "gap_m", "min_component_m", "simplify_m",
                     "strip_overlap_m"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                problems.append(f"{name} must be a non-negative number, got {value}")
        if not 0.0 <= self.gap_angle_deg <= 90.0:
            problems.append(f"gap_angle_deg must be between 0 and 90 degrees, got {self.gap_angle_deg}")
        if self.strip_rows < 64:
            problems.append(f"strip_rows must be at least 64, got {self.strip_rows}")
        if problems:
            raise VectorError("; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        """Plain data for reports and the GeoJSON's ``nltool`` member."""
        return asdict(self)


@dataclass(frozen=True)
class PixelScale:
    """Metres per pixel along x (columns) and y (rows)."""

    x: float
    y: float

    @property
    def mean(self) -> float:
        """The average side of a pixel in metres (what areas and widths are converted with)."""
        return (self.x + self.y) / 2

    def pixels(self, metres: float) -> float:
        """A distance in metres as pixels."""
        return metres / self.mean

    def area_pixels(self, square_metres: float) -> int:
        """An area in m² as a whole number of pixels (rounded up)."""
        return math.ceil(square_metres / (self.x * self.y))


STANDARD_VARIANT = "spacenet"
"""SpaceNet's APLS as CosmiQ's reference computes it: the default."""
NLTOOL_VARIANT = "nltool"
"""nltool's variant: control points on straight edges, no renaming, the length filter on every pair."""
VARIANTS = (STANDARD_VARIANT, NLTOOL_VARIANT)


@dataclass(frozen=True)
class AplsSettings:
    """Which APLS (``variant``) and its parameters; defaults are those of the reference's ``main()``
    (see :mod:`nltool.vectors.apls`).

    ``is_curved_eps`` only matters to the standard variant (edges straighter than this get no control
    points along them); ``seed`` draws the control-point sample of large graphs.
    """

    variant: str = STANDARD_VARIANT
    linestring_delta_m: float = 200.0
    max_snap_dist_m: float = 4.0
    min_path_length_m: float = 0.001
    max_control_points: int = 500
    is_curved_eps: float = 0.12
    seed: int = 0

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise VectorError(f"unknown APLS variant {self.variant!r}: choose {' or '.join(VARIANTS)}")
        if not (self.linestring_delta_m > 0 and self.max_snap_dist_m >= 0 and self.min_path_length_m >= 0):
            raise VectorError(f"APLS needs linestring_delta_m > 0 and non-negative snap and path limits, got {self}")
        if self.max_control_points < 2:
            raise VectorError(f"max_control_points must be at least 2, got {self.max_control_points}")

    @property
    def standard(self) -> bool:
        """True for SpaceNet's standard metric."""
        return self.variant == STANDARD_VARIANT
