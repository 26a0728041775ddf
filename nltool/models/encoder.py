"""ResNet34 encoder (torchvision) with NL-LinkNet's optional non-local blocks between stages."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import resnet34

from nltool.models.nonlocal_block import NonLocalBlock2d, Pairwise

ENCODER_CHANNELS: tuple[int, int, int, int] = (64, 128, 256, 512)


class NonLocalResNet34Encoder(nn.Module):
    """torchvision's ResNet34 without avgpool/fc; returns the four stage outputs e1..e4.

    ``nonlocal3`` sits on the 128-channel output of layer2 (before layer3) and ``nonlocal4`` on the
    256-channel output of layer3 (before layer4). The skip connections take the stage outputs
    before the blocks, except that ``nonlocal4_feeds_skip`` passes NL4's output to the e3 skip as
    the authors' NL4-LinkNet does (their NL34-LinkNet does not).
    """

    def __init__(
        self,
        *,
        nonlocal3: Pairwise | None = None,
        nonlocal4: Pairwise | None = None,
        nonlocal4_feeds_skip: bool = False,
    ) -> None:
        super().__init__()
        resnet = resnet34(weights=None)
        self.conv1 = resnet.conv1
        self.bn1 = resnet.bn1
        self.relu = resnet.relu
        self.maxpool = resnet.maxpool
        self.layer1 = resnet.layer1
        self.layer2 = resnet.layer2
        self.layer3 = resnet.layer3
        self.layer4 = resnet.layer4
        self.nonlocal3 = NonLocalBlock2d(ENCODER_CHANNELS[1], nonlocal3) if nonlocal3 else None
        self.nonlocal4 = NonLocalBlock2d(ENCODER_CHANNELS[2], nonlocal4) if nonlocal4 else None
        self.nonlocal4_feeds_skip = nonlocal4_feeds_skip

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        e1 = self.layer1(x)
        e2 = self.layer2(e1)
        e3 = self.layer3(e2 if self.nonlocal3 is None else self.nonlocal3(e2))
        into_layer4 = e3 if self.nonlocal4 is None else self.nonlocal4(e3)
        if self.nonlocal4_feeds_skip:
            e3 = into_layer4
        e4 = self.layer4(into_layer4)
        return e1, e2, e3, e4

    def resnet_state_dict_keys(self) -> set[str]:
        """Keys of this encoder that a torchvision ResNet34 state dict provides."""
        return {k for k in self.state_dict() if not k.startswith(("nonlocal3.", "nonlocal4."))}
