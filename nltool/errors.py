"""Errors that nltool reports to users: each message says what was wrong and what to do."""

from __future__ import annotations


class NltoolError(Exception):
    """Base class of every error the CLI prints as a one-line message instead of a traceback."""


class ModelConfigError(NltoolError, ValueError):
    """An unknown architecture, pairwise function or encoder-weights option."""


class CheckpointError(NltoolError):
    """A checkpoint file that is missing, unreadable or does not fit the requested model."""


class EncoderWeightsError(NltoolError):
    """Encoder weights that cannot be obtained or do not fit a ResNet34."""


class InputShapeError(NltoolError, ValueError):
    """A tensor that the model cannot take (channels, rank, or sides not multiples of 32)."""


class InferenceConfigError(NltoolError, ValueError):
    """An inference setting out of range (tile, overlap, TTA mode, scales, threshold, batch size)."""


class BackendError(NltoolError):
    """An artifact no backend can run, or a runtime (onnxruntime, TensorRT, CUDA) that is missing."""


class ImageError(NltoolError):
    """An input image that cannot be read or used: unreadable bytes, a pixel format, an absurd size."""


class OutputExistsError(NltoolError):
    """An output file that is already there; nltool overwrites only when asked (--force)."""


class VectorError(NltoolError, ValueError):
    """A road-network input or setting that cannot be used: a bad threshold, a GeoJSON without
    LineStrings, a CRS that cannot be turned into metres, a mask too wide to vectorize."""
