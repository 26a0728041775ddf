"""The torch backend's precision, memory format and ``torch.compile`` choices: the pure decisions,
bf16 autocast against fp32 on a confident model, fp16 refused on the CPU, and (slow) one compile
whose kernels land in nltool's cache folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import sharp_linknet

from nltool.errors import BackendError
from nltool.inference.backends.torch_backend import TorchBackend
from nltool.inference.backends.torch_options import (
    COMPILE_DYNAMIC,
    COMPILE_OPTIONS,
    INDUCTOR_CACHE_ENV,
    autocast_dtype,
    inductor_cache_dir,
    point_inductor_cache,
    use_channels_last,
)
from nltool.metrics import road_iou
from nltool.models import build_model
from nltool.synthetic import render_scene, scene_rng

TORCH_DEFAULT = "/tmp/torchinductor_someone"


def scenes(n: int, size: int) -> np.ndarray:
    """``n`` synthetic road scenes as a float32 N×3×size×size RGB 0-255 batch."""
    rgb = np.stack([render_scene(size, scene_rng(0, i))[0] for i in range(n)])
    return rgb.transpose(0, 3, 1, 2).astype(np.float32)


def pooled_iou(a: np.ndarray, b: np.ndarray, threshold: float) -> float:
    """Road IoU of two N×1×H×W probability batches' masks at ``threshold``, pooled over the batch."""
    return road_iou((a > threshold).reshape(-1, a.shape[-1]), (b > threshold).reshape(-1, b.shape[-1]))


# -- the decisions ------------------------------------------------------------------------------
def test_autocast_dtype_per_precision_and_device() -> None:
    assert autocast_dtype("fp32", "cpu") is None and autocast_dtype("fp32", "cuda") is None
    assert autocast_dtype("bf16", "cpu") == autocast_dtype("bf16", "cuda") == "bfloat16"
    assert autocast_dtype("fp16", "cuda") == "float16"


def test_fp16_on_the_cpu_and_unknown_precisions_are_refused_with_what_to_use() -> None:
    with pytest.raises(BackendError, match="fp16 needs a CUDA GPU.*use --precision bf16 or fp32"):
        autocast_dtype("fp16", "cpu")
    with pytest.raises(BackendError, match="'int8' is not supported by the torch backend; use one of fp32, bf16, fp16"):
        autocast_dtype("int8", "cpu")


def test_channels_last_on_the_cpu_always_and_on_cuda_for_half_precisions() -> None:
    assert all(use_channels_last("cpu", p) for p in ("fp32", "bf16"))
    assert use_channels_last("cuda", "bf16") and use_channels_last("cuda", "fp16")
    assert not use_channels_last("cuda", "fp32")


def test_compile_does_not_freeze_weights_and_lets_shapes_go_dynamic_on_demand() -> None:
    assert COMPILE_OPTIONS == {"freezing": False}
    assert COMPILE_DYNAMIC is None


def test_inductor_cache_lives_in_nltools_cache_unless_the_user_chose_one(tmp_path: Path) -> None:
    ours = {"NLTOOL_CACHE_DIR": str(tmp_path)}
    assert inductor_cache_dir(ours, TORCH_DEFAULT) == tmp_path / "torch-inductor"
    # torch._dynamo writes its /tmp default into the variable on import: that is not the user's choice
    assert inductor_cache_dir({**ours, INDUCTOR_CACHE_ENV: TORCH_DEFAULT}, TORCH_DEFAULT) == tmp_path / "torch-inductor"
    assert inductor_cache_dir({**ours, INDUCTOR_CACHE_ENV: "/data/ind"}, TORCH_DEFAULT) == Path("/data/ind")
    assert inductor_cache_dir({"XDG_CACHE_HOME": "/xdg"}, TORCH_DEFAULT) == Path("/xdg/nltool/torch-inductor")
    env = dict(ours)
    assert point_inductor_cache(env) == tmp_path / "torch-inductor"
    assert env[INDUCTOR_CACHE_ENV] == str(tmp_path / "torch-inductor")


# -- the backend --------------------------------------------------------------------------------
def test_bf16_autocast_stays_close_to_fp32() -> None:
    """A random model's probabilities sit in a narrow band (here all above 0.5), so the masks are
    compared at fp32's median probability: half the pixels road, and every flip near that threshold
    counts. The 0.99 mask-IoU gate itself is measured on a trained NL34 (benchmarks/torch_compile.py)."""
    x = scenes(2, 128)
    fp32 = TorchBackend(sharp_linknet(), device="cpu").run(x)
    bf16_backend = TorchBackend(sharp_linknet(), device="cpu", precision="bf16")
    bf16 = bf16_backend.run(x)
    assert bf16.dtype == np.float32 and bf16.shape == fp32.shape == (2, 1, 128, 128)
    assert np.abs(bf16 - fp32).mean() < 0.005 and np.abs(bf16 - fp32).max() < 0.05
    assert pooled_iou(bf16, fp32, threshold=float(np.median(fp32))) >= 0.97
    assert bf16_backend.describe()["precision"] == "bf16" and not bf16_backend.describe()["compiled"]


def test_channels_last_gives_the_same_probabilities() -> None:
    x = scenes(1, 64)
    nhwc = TorchBackend(sharp_linknet(), device="cpu", channels_last=True)
    nchw = TorchBackend(sharp_linknet(), device="cpu", channels_last=False)
    assert nhwc.describe()["channels_last"] and not nchw.describe()["channels_last"]
    np.testing.assert_allclose(nhwc.run(x), nchw.run(x), atol=1e-4)


def test_fp16_on_the_cpu_is_refused_by_the_backend() -> None:
    with pytest.raises(BackendError, match="fp16 needs a CUDA GPU"):
        TorchBackend(sharp_linknet(), device="cpu", precision="fp16")


@pytest.mark.slow
def test_compiled_backend_matches_eager_and_caches_its_kernels_in_nltools_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One compile (a minute on 2 cores): the tiny LinkNet at 64², batch 2. A second model with other
    weights reuses the compiled graph and still gives its own probabilities."""
    monkeypatch.setenv("NLTOOL_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv(INDUCTOR_CACHE_ENV, raising=False)
    x = scenes(2, 64)
    compiled = TorchBackend(sharp_linknet(), device="cpu", compile=True)
    np.testing.assert_allclose(compiled.run(x), TorchBackend(sharp_linknet(), device="cpu").run(x), atol=1e-4)
    assert compiled.describe()["compiled"]
    cached = [p for p in (tmp_path / "torch-inductor").rglob("*") if p.is_file()]
    assert any("fxgraph" in p.parts for p in cached), cached[:10]
    torch.manual_seed(1)
    other = build_model("linknet").eval()
    np.testing.assert_allclose(TorchBackend(other, device="cpu", compile=True).run(x),
                               TorchBackend(other, device="cpu").run(x), atol=1e-4)
