"""The non-local block: identity at initialisation, and paper eqs. (1)-(5) computed directly."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from nltool.models import PAIRWISE_FUNCTIONS, NonLocalBlock2d, build_model


@pytest.mark.parametrize("pairwise", PAIRWISE_FUNCTIONS)
def test_fresh_block_is_the_identity(pairwise: str) -> None:
    torch.manual_seed(0)
    block = NonLocalBlock2d(16, pairwise)  # type: ignore[arg-type]
    x = torch.randn(2, 16, 8, 12)
    for mode in (block.train, block.eval):
        mode()
        torch.testing.assert_close(block(x), x, rtol=0, atol=0)


def test_inserted_blocks_leave_the_baseline_unchanged() -> None:
    """NL34 with fresh blocks computes exactly what the baseline with the same weights computes."""
    torch.manual_seed(0)
    nl34 = build_model("nl34-linknet").eval()
    baseline = build_model("linknet").eval()
    shared = {k: v for k, v in nl34.state_dict().items() if "nonlocal" not in k}
    baseline.load_state_dict(shared, strict=True)
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(nl34(x), baseline(x), rtol=0, atol=0)


def _conv1x1(conv: torch.nn.Conv2d, v: torch.Tensor) -> torch.Tensor:
    """A 1×1 conv applied to one feature vector: W v + b."""
    return conv.weight[:, :, 0, 0] @ v + conv.bias


def _direct_nonlocal(block: NonLocalBlock2d, x: torch.Tensor) -> torch.Tensor:
    """Eqs. (1)-(5) of the paper, one position at a time, in float64.

    The keys ``j`` run over 2×2 max-pooled positions (sub-sampling of phi and g, applied after
    their 1×1 convs as in the authors' code).
    """
    _, _c, h, w = x.shape
    xs = x[0]
    positions = list(itertools.product(range(h), range(w)))
    windows = list(itertools.product(range(0, h, 2), range(0, w, 2)))

    def pooled(fn) -> list[torch.Tensor]:
        return [torch.stack([fn(xs[:, a + da, b + db]) for da in (0, 1) for db in (0, 1)]).amax(0)
                for a, b in windows]

    g = pooled(lambda v: _conv1x1(block.g[0], v))
    if block.pairwise == "gaussian":
        u = {p: xs[:, p[0], p[1]] for p in positions}       # eq. (4): raw features
        keys = pooled(lambda v: v)
    else:
        u = {p: _conv1x1(block.theta, xs[:, p[0], p[1]]) for p in positions}  # eqs. (2), (3)
        keys = pooled(lambda v: _conv1x1(block.phi[0], v))

    conv_w, bn = block.W[0], block.W[1]
    out = torch.empty_like(xs)
    for p in positions:
        if block.pairwise == "dot_product":
            f = [u[p] @ k for k in keys]
            norm = len(keys)  # C = N
        else:
            f = [math.e ** (u[p] @ k) for k in keys]
            norm = sum(f)  # C = sum_j f
        y = sum(fj * gj for fj, gj in zip(f, g, strict=True)) / norm  # eq. (1)
        wy = _conv1x1(conv_w, y)
        wy = (wy - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias
        out[:, p[0], p[1]] = wy + xs[:, p[0], p[1]]  # eq. (5)
    return out.unsqueeze(0)


@pytest.mark.parametrize("pairwise", PAIRWISE_FUNCTIONS)
def test_block_matches_direct_computation_of_paper_equations(pairwise: str) -> None:
    torch.manual_seed(3)
    block = NonLocalBlock2d(6, pairwise).double().eval()  # type: ignore[arg-type]
    bn = block.W[1]
    with torch.no_grad():  # a non-trivial W so the test sees y, not just the residual
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 2.0)
    x = torch.randn(1, 6, 4, 6, dtype=torch.float64) * 0.7
    expected = _direct_nonlocal(block, x)
    with torch.no_grad():
        got = block(x)
    assert not torch.allclose(got, x), "W must be non-zero for this test to mean anything"
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)


def test_inter_channels_are_half_the_input() -> None:
    block = NonLocalBlock2d(256)
    assert block.inter_channels == 128
    assert block.g[0].out_channels == 128 and block.W[0].in_channels == 128
