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
