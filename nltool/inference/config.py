"""PipelineConfig: every setting of the inference pipeline, validated once, shared by all callers."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

from nltool.errors import InferenceConfigError
from nltool.models.archs import SIZE_MULTIPLE

TTAMode = Literal["none", "flip", "d4"]
TTA_MODES: tuple[str, ...] = get_args(TTAMode)
OutputFormat = Literal["png", "tif", "prob"]
"""png: mask 255/0; tif: mask as GeoTIFF (georeferencing kept); prob: probability as 8-bit PNG."""
OUTPUT_FORMATS: tuple[str, ...] = get_args(OutputFormat)
Precision = Literal["fp32", "bf16", "fp16", "int8"]
"""The numeric precision a model runs at; each backend runs the subset :data:`nltool.inference.selection.CAPABILITIES`
lists for it (:func:`nltool.inference.selection.backend_precisions`)."""
PRECISIONS: tuple[Precision, ...] = get_args(Precision)
DEFAULT_MAX_PIXELS = 500_000_000
"""Largest accepted image (about 22 000 × 22 000); raise it for bigger GeoTIFFs, which stream."""


@dataclass(frozen=True)
class PipelineConfig:
    """How an image becomes a mask: tiling, test-time augmentation, threshold, batching, limits.

    ``tile`` defaults to the training size (1024) with 128 px overlap. ``tta``: ``none``, ``flip``
    (the 4 combinations of horizontal and vertical flips) or ``d4`` (the paper's 8 flips and
    rotations). ``scales`` adds multi-scale testing (e.g. 0.75 1.0 1.25). Road is
    ``mean probability > threshold``; 0.5 with d4 is the paper's "sum of 8 masks > 4".
    """

    tile: int = 1024
    overlap: int = 128
    tta: TTAMode = "none"
    scales: tuple[float, ...] = (1.0,)
    threshold: float = 0.5
    batch_size: int = 1
    max_pixels: int = DEFAULT_MAX_PIXELS

    def __post_init__(self) -> None:
        object.__setattr__(self, "scales", tuple(float(s) for s in self.scales))
        problems = []
        if self.tile < SIZE_MULTIPLE or self.tile % SIZE_MULTIPLE:
            problems.append(f"tile must be a positive multiple of {SIZE_MULTIPLE}, got {self.tile}")
        if not 0 <= self.overlap <= self.tile // 2:
            problems.append(f"overlap must be between 0 and half the tile ({self.tile // 2}), got {self.overlap}")
        if self.tta not in TTA_MODES:
            problems.append(f"tta must be one of {', '.join(TTA_MODES)}, got {self.tta!r}")
        if not self.scales or any(not 0.25 <= s <= 4.0 for s in self.scales):
            problems.append(f"scales must be between 0.25 and 4, got {list(self.scales)}")
        if not 0.0 <= self.threshold < 1.0:
            problems.append(f"threshold must be in [0, 1), got {self.threshold}")
        if not 1 <= self.batch_size <= 256:
            problems.append(f"batch size must be between 1 and 256, got {self.batch_size}")
        if self.max_pixels < SIZE_MULTIPLE * SIZE_MULTIPLE:
            problems.append(f"max pixels must be at least {SIZE_MULTIPLE * SIZE_MULTIPLE}, got {self.max_pixels}")
        if problems:
            raise InferenceConfigError("; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        """Plain data, e.g. for reports and the serving archive's config."""
        data = asdict(self)
        data["scales"] = list(self.scales)
        return data
