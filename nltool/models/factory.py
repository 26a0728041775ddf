"""``build_model``: the one way to make an NL-LinkNet family model."""

from __future__ import annotations

from torch import nn

from nltool.models.archs import ARCHS, DEFAULT_ARCH, DEFAULT_PAIRWISE
from nltool.models.config import ModelConfig
from nltool.models.encoder_weights import EncoderWeights, load_encoder_weights
from nltool.models.linknet import NLLinkNet
from nltool.models.nonlocal_block import Pairwise
from nltool.models.normalization import Normalization


def list_archs() -> list[str]:
    """Arch names accepted by :func:`build_model`, baseline first."""
    return list(ARCHS)


def build_model(
    arch: str = DEFAULT_ARCH,
    *,
    pairwise: Pairwise = DEFAULT_PAIRWISE,
    encoder_weights: EncoderWeights = None,
    normalization: Normalization | None = None,
) -> NLLinkNet:
    """Build ``arch`` with the given non-local pairwise function and initial encoder weights.

    ``encoder_weights`` is ``"imagenet"`` (torchvision's published ResNet34; downloads once),
    ``"none"``/``None`` (random init), or a path to a local ResNet34 state dict file.
    The model returns logits; ``model.config`` records what it is.
    """
    config = ModelConfig(arch=arch, pairwise=pairwise, normalization=normalization or Normalization.paper())
    model = NLLinkNet(config)
    load_encoder_weights(model.encoder, encoder_weights)
    return model


def count_parameters(model: nn.Module) -> int:
    """Number of learnable parameters (what the paper's Table II counts)."""
    return sum(p.numel() for p in model.parameters())
