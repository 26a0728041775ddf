"""Shared fixtures: the authors' key reference, random authors-format state dicts, small inputs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from nltool.models import NLLinkNet, build_model

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("NLTOOL_SHARED", REPO.parent / "shared"))
AUTHORS_KEYS = SHARED / "reference" / "authors_checkpoint_keys.json"


@pytest.fixture(scope="session")
def authors_keys() -> dict[str, dict[str, list[int]]]:
    """arch -> {authors' key: shape}, read off the authors' code (shared/reference)."""
    if not AUTHORS_KEYS.is_file():
        raise FileNotFoundError(
            f"{AUTHORS_KEYS} is missing: tests need the project's shared/ folder beside the checkout "
            "(or NLTOOL_SHARED pointing at it)"
        )
    data = json.loads(AUTHORS_KEYS.read_text())
    return {arch: entry["keys"] for arch, entry in data.items()}


def random_state_dict(shapes: dict[str, list[int]], seed: int = 0) -> dict[str, torch.Tensor]:
    """Random values with the given keys and shapes; BN variances positive, counters integral."""
    gen = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(1000, dtype=torch.long)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=gen) + 0.5
        else:
            state[key] = torch.randn(shape, generator=gen) * 0.05
    return state


def sharp_linknet() -> NLLinkNet:
    """A seeded random baseline LinkNet whose last conv is scaled ×50, so its masks hold both road
    and background (a random head alone gives probabilities near 0.5 everywhere)."""
    torch.manual_seed(0)
    model = build_model("linknet").eval()
    with torch.no_grad():
        model.decoder.head.conv3.weight.mul_(50)
    return model


@pytest.fixture
def rgb_batch() -> torch.Tensor:
    """A reproducible 1×3×64×96 RGB batch in 0-255."""
    return torch.rand(1, 3, 64, 96, generator=torch.Generator().manual_seed(1)) * 255


def unsure_linknet(*outliers: str, road_fraction: float = 0.5) -> NLLinkNet:
    """A random LinkNet whose masks split the INT8 parity scenes half and half (every pixel near the
    threshold), optionally with one activation channel 1000× the others at the input of
    ``decoder`` (the decoder's ``block1.conv3``) or ``encoder`` (``layer1.0.conv2``). Same FP32
    output, but that Conv's per-tensor INT8 input scale then wipes out every other channel.
    ``road_fraction`` moves the threshold: at 0.9 fewer pixels sit near it per road pixel, so INT8
    noise flips about a quarter as much of the mask (a model sure enough to hold with every Conv
    INT8 on any CPU, with or without VNNI)."""
    from nltool.export.parity import int8_cases
    from nltool.models.probability import ProbabilityModel

    torch.manual_seed(0)
    model = build_model("linknet").eval()
    pairs = {"decoder": [(model.decoder.block1.norm2, model.decoder.block1.conv3)],
             "encoder": [(model.encoder.layer1[0].bn1, model.encoder.layer1[0].conv2)]}
    with torch.no_grad():
        for norm, conv in (pair for name in outliers for pair in pairs[name]):
            norm.weight[0] *= 1000
            norm.bias[0] *= 1000
            conv.weight[:, 0] /= 1000
        head = model.decoder.head.conv3
        head.bias.zero_()
        logits = torch.logit(ProbabilityModel(model)(int8_cases()[0].batch))
        head.bias.fill_(-float(torch.quantile(logits.flatten(), 1 - road_fraction, interpolation="lower")))
    return model
