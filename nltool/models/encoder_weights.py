"""Initial encoder weights: torchvision's ImageNet ResNet34, none, or a local ResNet34 state dict."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torchvision.models import ResNet34_Weights

from nltool.errors import EncoderWeightsError
from nltool.models.encoder import NonLocalResNet34Encoder
from nltool.models.state_dict import diff_state_dict
from nltool.models.torchfile import load_torch_file

EncoderWeights = str | os.PathLike[str] | None
"""``"imagenet"``, ``"none"``/``None``, or a path to a ResNet34 state dict file."""


def _imagenet_state_dict() -> dict[str, torch.Tensor]:
    weights = ResNet34_Weights.IMAGENET1K_V1
    try:
        return weights.get_state_dict(progress=True, check_hash=True)
    except Exception as exc:  # network errors come in many types (URLError, OSError, HTTPError...)
        raise EncoderWeightsError(
            f"could not fetch torchvision's ImageNet ResNet34 weights from {weights.url} ({exc}). "
            "On a machine without internet, download that file elsewhere and pass its path as "
            "--encoder-weights PATH, or use --encoder-weights none."
        ) from exc


def _file_state_dict(path: Path) -> dict[str, torch.Tensor]:
    data = load_torch_file(path, what="encoder weights")
    if isinstance(data, dict) and "state_dict" in data and isinstance(data["state_dict"], dict):
        data = data["state_dict"]
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise EncoderWeightsError(f"encoder weights {path} are not a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in data.items()}


def load_encoder_weights(encoder: NonLocalResNet34Encoder, source: EncoderWeights) -> None:
    """Copy ResNet34 weights into ``encoder`` (non-local blocks keep their identity init).

    The classifier (``fc.*``) of a full ResNet34 state dict is ignored; any other missing,
    unexpected or mis-shaped key is an :class:`EncoderWeightsError` naming it.
    """
    if source is None or str(source) == "none":
        return
    if str(source) == "imagenet":
        state = _imagenet_state_dict()
        origin = "torchvision ImageNet ResNet34"
    else:
        state = _file_state_dict(Path(source))
        origin = str(source)
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    resnet_keys = encoder.resnet_state_dict_keys()
    expected = {k: v for k, v in encoder.state_dict().items() if k in resnet_keys}
    diff = diff_state_dict(expected, state)
    if diff:
        raise EncoderWeightsError(f"{origin} is not a ResNet34 state dict:\n{diff.describe()}")
    encoder.load_state_dict(state, strict=False)
