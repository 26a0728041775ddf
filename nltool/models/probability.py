"""ProbabilityModel: RGB 0-255 in, road probability out — the artifact contract around a model.

The PyTorch backend runs it and the ONNX export traces it, so normalization and the sigmoid live
in exactly one place and every artifact answers the same question the same way.
"""

from __future__ import annotations

import torch
from torch import nn

from nltool.models.linknet import NLLinkNet


class ProbabilityModel(nn.Module):
    """``sigmoid(model((rgb / 255 - mean) / std))``: N×3×H×W float RGB 0-255 -> N×1×H×W in [0, 1]."""

    def __init__(self, model: NLLinkNet) -> None:
        super().__init__()
        self.model = model
        scale, shift = model.config.normalization.affine()
        # As buffers, the constants follow .to(device) and are baked into exported graphs.
        self.register_buffer("scale", scale, persistent=False)
        self.register_buffer("shift", shift, persistent=False)

    scale: torch.Tensor
    shift: torch.Tensor

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.model(image * self.scale + self.shift))
