"""One inference pipeline for predict, evaluate and serving: backends, tiling, TTA, thresholding.

The settings (:mod:`nltool.inference.config`) are imported at once (torch-free); the pipeline and
the backends on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nltool.inference.config import OUTPUT_FORMATS, TTA_MODES, OutputFormat, PipelineConfig, TTAMode
from nltool.lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "backends": ("Backend", "load_backend"),
    "pipeline": ("ArraySink", "ArraySource", "InferencePipeline"),
})

if TYPE_CHECKING:
    from nltool.inference.backends import Backend, load_backend
    from nltool.inference.pipeline import ArraySink, ArraySource, InferencePipeline

__all__ = [
    "OUTPUT_FORMATS",
    "TTA_MODES",
    "ArraySink",
    "ArraySource",
    "Backend",
    "InferencePipeline",
    "OutputFormat",
    "PipelineConfig",
    "TTAMode",
    "load_backend",
]
