"""Encoder initialisation: none, a local ResNet34 state dict file, and clear errors for bad files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torchvision.models import resnet18, resnet34

from nltool.errors import CheckpointError, EncoderWeightsError
from nltool.models import build_model


def test_local_resnet34_file_initialises_the_encoder(tmp_path: Path) -> None:
    torch.manual_seed(5)
    reference = resnet34(weights=None)
    torch.save(reference.state_dict(), tmp_path / "resnet34.pth")  # fc.* included, as torchvision ships it
    model = build_model("nl34-linknet", encoder_weights=tmp_path / "resnet34.pth")
    ours = model.encoder.state_dict()
    for key, value in reference.state_dict().items():
        if not key.startswith("fc."):
            assert torch.equal(ours[key], value), key
    # Non-local blocks keep their identity initialisation.
    assert torch.count_nonzero(model.encoder.nonlocal3.W[1].weight) == 0


def test_data_parallel_prefix_is_accepted(tmp_path: Path) -> None:
    state = {f"module.{k}": v for k, v in resnet34(weights=None).state_dict().items()}
    torch.save(state, tmp_path / "dp.pth")
    build_model("linknet", encoder_weights=str(tmp_path / "dp.pth"))


def test_none_keeps_random_init() -> None:
    a = build_model("linknet", encoder_weights="none")
    b = build_model("linknet", encoder_weights=None)
    assert a.encoder.conv1.weight.shape == b.encoder.conv1.weight.shape == (64, 3, 7, 7)


def test_resnet18_file_is_refused_with_the_keys(tmp_path: Path) -> None:
    torch.save(resnet18(weights=None).state_dict(), tmp_path / "r18.pth")
    with pytest.raises(EncoderWeightsError, match="not a ResNet34 state dict:\n  missing keys") as info:
        build_model("linknet", encoder_weights=tmp_path / "r18.pth")
    assert "layer1.2.conv1.weight" in str(info.value)  # ResNet18 has two blocks per stage


def test_missing_weights_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="encoder weights not found: .*nope.pth"):
        build_model("linknet", encoder_weights=tmp_path / "nope.pth")
