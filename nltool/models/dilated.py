"""D-LinkNet's dilated centre block, the context module NL-LinkNet is compared against."""

from __future__ import annotations

import torch
from torch import nn


class DilatedCenterBlock(nn.Module):
    """Four cascaded 3×3 convs (dilation 1, 2, 4, 8), each followed by ReLU and feeding the next.

    Returns the input plus all four outputs. Biases start at zero, as in the D-LinkNet code.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.dilate1 = nn.Conv2d(channels, channels, 3, dilation=1, padding=1)
        self.dilate2 = nn.Conv2d(channels, channels, 3, dilation=2, padding=2)
        self.dilate3 = nn.Conv2d(channels, channels, 3, dilation=4, padding=4)
        self.dilate4 = nn.Conv2d(channels, channels, 3, dilation=8, padding=8)
        for conv in (self.dilate1, self.dilate2, self.dilate3, self.dilate4):
            assert conv.bias is not None
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        total = x
        for conv in (self.dilate1, self.dilate2, self.dilate3, self.dilate4):
            out = torch.relu(conv(out))
            total = total + out
        return total
