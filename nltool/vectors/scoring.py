"""APLS per image for ``nltool evaluate --apls``: predicted masks vectorized against truth networks.

The truth network of a scene is its ``<id>.geojson`` in a graphs folder when one is given (pixel
coordinates as nltool writes them for un-georeferenced images, or any CRS for georeferenced
scenes), else its truth mask, vectorized with the same settings as the prediction.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from nltool.errors import VectorError
from nltool.vectors.apls import AplsResult, metric_name
from nltool.vectors.compare import apls_between, network_lines
from nltool.vectors.frame import RasterFrame
from nltool.vectors.io import RoadLines, read_lines
from nltool.vectors.settings import DEFAULT_PIXEL_SIZE_M, AplsSettings, VectorizeSettings
from nltool.vectors.vectorize import vectorize_array

MEAN_APLS_DEFINITION = (
    "APLS (Average Path Length Similarity) of each image's vectorized prediction against its truth "
    "network, averaged over images; an image whose truth and prediction both have no road scores 1.0"
)


class AplsScorer:
    """Called with (sample, RGB, truth mask, predicted mask) for each scene; collects APLS per image."""

    def __init__(self, graphs: Path | None = None, settings: AplsSettings | None = None,
                 vectorize: VectorizeSettings | None = None, pixel_size_m: float = DEFAULT_PIXEL_SIZE_M) -> None:
        """Score against ``graphs/<id>.geojson`` when ``graphs`` is given, else against the truth masks."""
        self.graphs, self.settings = graphs, settings or AplsSettings()
        self.vectorize, self.pixel_size_m = vectorize or VectorizeSettings(), pixel_size_m
        if graphs is not None and not Path(graphs).is_dir():
            raise VectorError(f"--graphs {graphs} is not a folder of <id>.geojson truth networks")
        self.per_image: dict[str, AplsResult | None] = {}

    def _lines(self, mask: np.ndarray) -> RoadLines:
        frame = RasterFrame(mask.shape[1], mask.shape[0], assumed_pixel_size_m=self.pixel_size_m)
        return network_lines(vectorize_array(mask, frame, self.vectorize))

    def __call__(self, sample: Any, rgb: np.ndarray, truth: np.ndarray, prediction: np.ndarray) -> None:
        """Score one scene (the ``on_mask`` hook of :func:`nltool.evaluation.evaluate_samples`)."""
        if self.graphs is not None:
            path = Path(self.graphs) / f"{sample.id}.geojson"
            if not path.is_file():
                raise VectorError(f"no truth network {path} for scene {sample.id}: give every scene a "
                                  "<id>.geojson in --graphs, or leave --graphs out to use the truth masks")
            truth_lines = read_lines(path)
        else:
            truth_lines = self._lines(truth.astype(bool))
        proposal_lines = self._lines(prediction > 0)
        if not truth_lines.lines and not proposal_lines.lines:
            self.per_image[sample.id] = None
            return
        self.per_image[sample.id] = apls_between(truth_lines, proposal_lines, self.settings)

    @property
    def mean(self) -> float:
        """Mean APLS over the scored images (images without road in truth and prediction count 1.0)."""
        values = [1.0 if r is None else r.apls for r in self.per_image.values()]
        return math.fsum(values) / len(values) if values else 0.0

    def to_dict(self) -> dict[str, Any]:
        """The report section: the mean with its definition, settings and per-image results."""
        return {"mean_apls_per_image": {"value": self.mean,
                                        "definition": f"{MEAN_APLS_DEFINITION}; {metric_name(self.settings.variant)}"},
                "standard": self.settings.standard, "settings": asdict(self.settings),
                "truth": "graphs" if self.graphs is not None else "masks",
                "per_image": {k: (None if r is None else r.to_dict()) for k, r in self.per_image.items()}}
