"""Road networks: probability maps and masks to centre-line graphs (GeoJSON, GeoPackage), and APLS.

Needs the ``[vector]`` extra (scikit-image, sknw, shapely, pyproj, networkx, pyogrio); every
module imports those inside the functions that use them, so importing this package is cheap.
"""

from nltool.vectors.frame import RasterFrame
from nltool.vectors.network import RoadEdge, RoadNetwork, RoadNode
from nltool.vectors.settings import DEFAULT_PIXEL_SIZE_M, VectorizeSettings
from nltool.vectors.strips import StripVectorizer
from nltool.vectors.vectorize import vectorize_array, vectorize_file

__all__ = [
    "DEFAULT_PIXEL_SIZE_M",
    "RasterFrame",
    "RoadEdge",
    "RoadNetwork",
    "RoadNode",
    "StripVectorizer",
    "VectorizeSettings",
    "vectorize_array",
    "vectorize_file",
]
