"""Helpers shared by the benchmark scripts: a synthetic scene, a model, the machine line."""

from __future__ import annotations

import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from nltool.inference.backends.base import Backend
from nltool.models import NLLinkNet, build_model, load_checkpoint
from nltool.synthetic import render_scene, scene_rng


def machine_line() -> str:
    """One line naming the machine and software, printed above every table."""
    return (f"# {platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, "
            f"python {platform.python_version()}")


def median_run_seconds(backend: Backend, batch: np.ndarray, repeats: int) -> float:
    """Median seconds of one ``backend.run`` on ``batch``, after one untimed warm-up call."""
    backend.run(batch)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        backend.run(batch)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def scene(size: int, seed: int = 0, index: int = 0) -> np.ndarray:
    """Scene ``index`` of the synthetic set with ``seed`` (uint8 RGB), as ``nltool data synth`` renders it."""
    rgb, _ = render_scene(size, scene_rng(seed, index))
    return rgb


def model_from(checkpoint: Path | None, arch: str) -> NLLinkNet:
    """The checkpoint's model, or a random ``arch`` (timing does not depend on the weights)."""
    if checkpoint is not None:
        return load_checkpoint(checkpoint).model
    torch.manual_seed(0)
    return build_model(arch).eval()


def confident_head(model: NLLinkNet, rgb: np.ndarray, spread: float = 8.0) -> NLLinkNet:
    """Rescale a random model's last conv so that on the H×W×3 uint8 ``rgb`` its logits have median 0
    and standard deviation ``spread``: half road, half background, and probabilities far from 0.5 as
    a trained model's are (a random head gives near-0.5 or one-class masks, where any rounding flips
    them). Precision parity measured on such a model means something."""
    from nltool.models.probability import ProbabilityModel

    head = model.decoder.head.conv3
    net = ProbabilityModel(model).eval()
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float()
    with torch.no_grad():
        logits = model(x * net.scale + net.shift)
        gain = spread / float(logits.std())
        head.weight.mul_(gain)
        head.bias.sub_(float(logits.median())).mul_(gain)
    return model
