"""The model family: parameter counts (paper Table II), forward shapes, input errors, the factory.

Every test that concerns an architecture runs over the arch table (``ARCHS``), so a new arch is
tested as soon as it is added there.
"""

from __future__ import annotations

import re

import pytest
import torch
from conftest import SHARED

from nltool.errors import InputShapeError, ModelConfigError
from nltool.models import ARCHS, build_model, count_parameters, list_archs

DESIGN_NAMES = {"baseline": "linknet", "NL3": "nl3-linknet", "NL4": "nl4-linknet", "NL34": "nl34-linknet",
                "D-LinkNet": "dlinknet"}


def design_table_ii() -> dict[str, float]:
    """Arch -> millions of parameters, read from the contract's line on Table II (shared/DESIGN.md)."""
    contract = re.search(r"Table II:(.*?)\n(?:-|\n)", (SHARED / "DESIGN.md").read_text(), re.S)
    assert contract, "shared/DESIGN.md no longer states the paper's Table II parameter counts"
    found = dict(re.findall(r"(baseline|NL34|NL3|NL4|D-LinkNet) (\d+\.\d+)M", contract.group(1)))
    return {DESIGN_NAMES[name]: float(value) for name, value in found.items()}


def test_the_arch_table_is_the_design_contracts() -> None:
    assert sorted(list_archs()) == sorted(ARCHS) == sorted(design_table_ii())


@pytest.mark.parametrize("arch", list(ARCHS))
def test_parameter_count_equals_paper_table_ii(arch: str) -> None:
    model = build_model(arch)
    assert round(count_parameters(model) / 1e6, 3) == ARCHS[arch].paper_params_m == design_table_ii()[arch]


@pytest.mark.parametrize("pairwise", ["embedded_gaussian", "dot_product"])
def test_dot_product_has_the_same_weights_as_embedded_gaussian(pairwise: str) -> None:
    assert round(count_parameters(build_model("nl34-linknet", pairwise=pairwise)) / 1e6, 3) == 21.822


def test_gaussian_pairwise_has_no_theta_phi_convs() -> None:
    model = build_model("nl34-linknet", pairwise="gaussian")
    # theta and phi convs of both blocks are gone: 2 × (C·C/2 + C/2) for C = 128 and 256.
    removed = 2 * (128 * 64 + 64) + 2 * (256 * 128 + 128)
    assert count_parameters(model) == 21_822_465 - removed
    assert model.encoder.nonlocal3.theta is None


def test_models_return_logits_for_a_1024_square_input() -> None:
    torch.manual_seed(0)
    model = build_model("nl34-linknet").eval()
    with torch.no_grad():  # a large last layer: logits leave [0, 1]; a sigmoid inside would not
        model.decoder.head.conv3.weight.mul_(1000)
    with torch.inference_mode():
        out = model(torch.randn(1, 3, 1024, 1024))
    assert out.shape == (1, 1, 1024, 1024)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()
    assert (out < 0).any() and (out > 1).any(), "outputs look like probabilities, expected logits"


@pytest.mark.parametrize("arch", list(ARCHS))
def test_non_square_input_keeps_its_shape(arch: str) -> None:
    model = build_model(arch).eval()
    with torch.inference_mode():
        out = model(torch.randn(2, 3, 512, 768))
    assert out.shape == (2, 1, 512, 768)


@pytest.mark.parametrize("shape", [(1, 3, 500, 512), (1, 3, 512, 100), (1, 3, 0, 64)])
def test_sides_not_multiple_of_32_are_refused(shape: tuple[int, ...]) -> None:
    with pytest.raises(InputShapeError, match="multiples of 32"):
        build_model("linknet")(torch.zeros(shape))


@pytest.mark.parametrize("shape", [(1, 4, 64, 64), (1, 1, 64, 64)])
def test_non_rgb_input_is_refused(shape: tuple[int, ...]) -> None:
    with pytest.raises(InputShapeError, match="3 \\(RGB\\) channels, got"):
        build_model("linknet")(torch.zeros(shape))


def test_unbatched_input_is_refused() -> None:
    with pytest.raises(InputShapeError, match="N×3×H×W"):
        build_model("linknet")(torch.zeros(3, 64, 64))


def test_unknown_arch_and_pairwise_name_the_choices() -> None:
    with pytest.raises(ModelConfigError, match="nl34-linknet"):
        build_model("nl5-linknet")
    with pytest.raises(ModelConfigError, match="embedded_gaussian"):
        build_model("nl34-linknet", pairwise="cosine")  # type: ignore[arg-type]


def test_dilated_center_returns_input_plus_four_cascaded_outputs() -> None:
    from nltool.models.dilated import DilatedCenterBlock

    torch.manual_seed(0)
    block = DilatedCenterBlock(4).double()
    x = torch.randn(1, 4, 20, 20, dtype=torch.float64)
    outs, current = [], x
    for conv, dilation in zip((block.dilate1, block.dilate2, block.dilate3, block.dilate4), (1, 2, 4, 8), strict=True):
        assert conv.dilation == (dilation, dilation)
        current = torch.relu(torch.nn.functional.conv2d(current, conv.weight, conv.bias, padding=dilation,
                                                        dilation=dilation))
        outs.append(current)
    torch.testing.assert_close(block(x), x + sum(outs))
