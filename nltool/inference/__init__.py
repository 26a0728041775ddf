"""One inference pipeline for predict, evaluate and serving: backends, tiling, TTA, thresholding."""

from nltool.inference.backends import Backend, load_backend
from nltool.inference.config import TTA_MODES, PipelineConfig, TTAMode
from nltool.inference.pipeline import ArraySink, ArraySource, InferencePipeline

__all__ = [
    "TTA_MODES",
    "ArraySink",
    "ArraySource",
    "Backend",
    "InferencePipeline",
    "PipelineConfig",
    "TTAMode",
    "load_backend",
]
