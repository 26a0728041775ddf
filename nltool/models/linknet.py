"""NL-LinkNet: a (non-local) ResNet34 encoder and a LinkNet decoder, returning logits."""

from __future__ import annotations

import torch
from torch import nn

from nltool.errors import InputShapeError
from nltool.models.archs import SIZE_MULTIPLE
from nltool.models.config import ModelConfig
from nltool.models.decoder import LinkNetDecoder
from nltool.models.encoder import NonLocalResNet34Encoder


def check_input(x: torch.Tensor) -> None:
    """Raise :class:`InputShapeError` unless ``x`` is N×3×H×W with H and W multiples of 32."""
    if x.dim() != 4:
        raise InputShapeError(f"expected an N×3×H×W tensor, got {x.dim()} dimensions {tuple(x.shape)}")
    _n, c, h, w = x.shape
    if c != 3:
        raise InputShapeError(f"expected 3 (RGB) channels, got {c} in input of shape {tuple(x.shape)}")
    if h % SIZE_MULTIPLE or w % SIZE_MULTIPLE or h == 0 or w == 0:
        raise InputShapeError(
            f"input height and width must be positive multiples of {SIZE_MULTIPLE}, got {h}×{w}; "
            "pad or tile the image first (the inference pipeline does this for you)"
        )


class NLLinkNet(nn.Module):
    """The whole NL-LinkNet family; which blocks exist follows from ``config.arch``.

    Input: normalized N×3×H×W (see ``config.normalization``). Output: N×1×H×W road logits.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        spec = config.spec
        self.config = config
        pairwise = config.pairwise
        self.encoder = NonLocalResNet34Encoder(
            nonlocal3=pairwise if spec.nonlocal3 else None,
            nonlocal4=pairwise if spec.nonlocal4 else None,
            nonlocal4_feeds_skip=spec.nonlocal4_feeds_skip,
        )
        self.decoder = LinkNetDecoder(dilated_center=spec.dilated_center)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_tracing():
            check_input(x)
        return self.decoder(self.encoder(x))
