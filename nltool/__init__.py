"""nltool: NL-LinkNet road extraction from training to serving.

The core package shared by training/, export/ and serving/: the model family, checkpoints,
and (as the stages land) the inference pipeline, imagery I/O and metrics.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
