"""LinkNet decoder: optional dilated centre, four decoder blocks with additive skips, and the head."""

from __future__ import annotations

import torch
from torch import nn

from nltool.models.dilated import DilatedCenterBlock
from nltool.models.encoder import ENCODER_CHANNELS


class DecoderBlock(nn.Module):
    """1×1 conv -> BN -> ReLU -> 3×3 transposed conv (stride 2) -> BN -> ReLU -> 1×1 conv -> BN -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        mid = in_channels // 4
        self.conv1 = nn.Conv2d(in_channels, mid, 1)
        self.norm1 = nn.BatchNorm2d(mid)
        self.deconv2 = nn.ConvTranspose2d(mid, mid, 3, stride=2, padding=1, output_padding=1)
        self.norm2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, out_channels, 1)
        self.norm3 = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.norm1(self.conv1(x)))
        x = torch.relu(self.norm2(self.deconv2(x)))
        return torch.relu(self.norm3(self.conv3(x)))


class LinkNetHead(nn.Module):
    """4×4 transposed conv (64->32, stride 2), ReLU, 3×3 conv, ReLU, 3×3 conv -> one logit per pixel."""

    def __init__(self, in_channels: int = 64, mid_channels: int = 32, num_classes: int = 1) -> None:
        super().__init__()
        self.deconv1 = nn.ConvTranspose2d(in_channels, mid_channels, 4, stride=2, padding=1)
        self.conv2 = nn.Conv2d(mid_channels, mid_channels, 3, padding=1)
        self.conv3 = nn.Conv2d(mid_channels, num_classes, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.deconv1(x))
        x = torch.relu(self.conv2(x))
        return self.conv3(x)


class LinkNetDecoder(nn.Module):
    """Decodes e1..e4 to logits at input resolution: d4 = block4(e4) + e3, d3 + e2, d2 + e1, d1, head."""

    def __init__(self, *, dilated_center: bool = False) -> None:
        super().__init__()
        c1, c2, c3, c4 = ENCODER_CHANNELS
        self.center = DilatedCenterBlock(c4) if dilated_center else None
        self.block4 = DecoderBlock(c4, c3)
        self.block3 = DecoderBlock(c3, c2)
        self.block2 = DecoderBlock(c2, c1)
        self.block1 = DecoderBlock(c1, c1)
        self.head = LinkNetHead(c1)

    def forward(self, features: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
        e1, e2, e3, e4 = features
        if self.center is not None:
            e4 = self.center(e4)
        d4 = self.block4(e4) + e3
        d3 = self.block3(d4) + e2
        d2 = self.block2(d3) + e1
        return self.head(self.block1(d2))
