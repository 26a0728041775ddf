"""The non-local block of NL-LinkNet (paper eqs. 1-5), with its three pairwise functions.

Module names (``g``, ``theta``, ``phi``, ``W``) follow the authors' code so their released state
dicts map one to one.
"""

from __future__ import annotations

import torch
from torch import nn

from nltool.models.archs import PAIRWISE_FUNCTIONS, Pairwise


def _conv1x1(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=1)


class NonLocalBlock2d(nn.Module):
    """z = W(y) + x with y_i = 1/C(x) * sum_j f(x_i, x_j) g(x_j) over 2×2-subsampled positions j.

    - ``embedded_gaussian``: f = exp(theta(x_i) . phi(x_j)), C = sum_j f  (a softmax);
    - ``gaussian``: f = exp(x_i . x_j) on the raw features (no theta/phi convs), C = sum_j f;
    - ``dot_product``: f = theta(x_i) . phi(x_j), C = N, the number of positions j.

    Inter channels are C/2. ``W`` is a 1×1 conv followed by BatchNorm whose weight and bias start at
    zero, so a freshly inserted block is the identity.
    """

    def __init__(self, in_channels: int, pairwise: Pairwise = "embedded_gaussian") -> None:
        super().__init__()
        if pairwise not in PAIRWISE_FUNCTIONS:
            raise ValueError(f"unknown pairwise function {pairwise!r}; choose one of {', '.join(PAIRWISE_FUNCTIONS)}")
        self.in_channels = in_channels
        self.inter_channels = max(in_channels // 2, 1)
        self.pairwise: Pairwise = pairwise

        self.g = nn.Sequential(_conv1x1(in_channels, self.inter_channels), nn.MaxPool2d(2))
        self.theta: nn.Module | None
        if pairwise == "gaussian":
            self.theta = None
            self.phi: nn.Module = nn.MaxPool2d(2)
        else:
            self.theta = _conv1x1(in_channels, self.inter_channels)
            self.phi = nn.Sequential(_conv1x1(in_channels, self.inter_channels), nn.MaxPool2d(2))
        norm = nn.BatchNorm2d(in_channels)
        nn.init.zeros_(norm.weight)
        nn.init.zeros_(norm.bias)
        self.W = nn.Sequential(_conv1x1(self.inter_channels, in_channels), norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        g_x = self.g(x).flatten(2).transpose(1, 2)  # N×M×C'   (M = subsampled positions)
        query = x if self.theta is None else self.theta(x)
        theta_x = query.flatten(2).transpose(1, 2)  # N×HW×C'
        phi_x = self.phi(x).flatten(2)  # N×C'×M
        f = torch.matmul(theta_x, phi_x)  # N×HW×M
        weights = f / f.shape[-1] if self.pairwise == "dot_product" else torch.softmax(f, dim=-1)
        y = torch.matmul(weights, g_x).transpose(1, 2).reshape(n, self.inter_channels, h, w)
        return self.W(y) + x

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, inter_channels={self.inter_channels}, pairwise={self.pairwise}"
