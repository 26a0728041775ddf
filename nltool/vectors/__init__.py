"""Road networks: probability maps and masks to centre-line graphs (GeoJSON, GeoPackage), and APLS.

Needs the ``[vector]`` extra (scikit-image, sknw, shapely, pyproj, networkx, pyogrio); every
module imports those inside the functions that use them. The settings are imported at once (no
numpy); the rest on first use, so the CLI reads their defaults without loading the vector stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nltool.lazy import lazy_exports
from nltool.vectors.settings import DEFAULT_PIXEL_SIZE_M, AplsSettings, VectorizeSettings

__getattr__, __dir__ = lazy_exports(__name__, {
    "frame": ("RasterFrame",),
    "network": ("RoadEdge", "RoadNetwork", "RoadNode"),
    "strips": ("StripVectorizer",),
    "vectorize": ("vectorize_array", "vectorize_file"),
})

if TYPE_CHECKING:
    from nltool.vectors.frame import RasterFrame
    from nltool.vectors.network import RoadEdge, RoadNetwork, RoadNode
    from nltool.vectors.strips import StripVectorizer
    from nltool.vectors.vectorize import vectorize_array, vectorize_file

__all__ = [
    "DEFAULT_PIXEL_SIZE_M",
    "AplsSettings",
    "RasterFrame",
    "RoadEdge",
    "RoadNetwork",
    "RoadNode",
    "StripVectorizer",
    "VectorizeSettings",
    "vectorize_array",
    "vectorize_file",
]
