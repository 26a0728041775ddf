"""Test-time augmentation: exact inverses, equivariance, and the paper's 8-pass average."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import sharp_linknet

from nltool.inference import InferencePipeline, PipelineConfig
from nltool.inference.backends.base import Backend
from nltool.inference.backends.torch_backend import TorchBackend
from nltool.inference.tta import TRANSFORMS, predict_with_tta, resize_bilinear, scaled_size


class SymmetricConvBackend(Backend):
    """A model equivariant to flips and 90° rotations: one conv whose kernel is D4-symmetric."""

    name = "symmetric-conv"

    def __init__(self) -> None:
        kernel = torch.randn(1, 3, 5, 5, generator=torch.Generator().manual_seed(0))
        variants = [torch.rot90(k, r, dims=(-2, -1)) for k in (kernel, kernel.flip(-1)) for r in range(4)]
        self.kernel = torch.stack(variants).mean(0) / 255.0

    def run(self, batch: np.ndarray) -> np.ndarray:
        return torch.sigmoid(F.conv2d(torch.from_numpy(batch) - 127.5, self.kernel, padding=2)).numpy()

    def describe(self) -> dict:
        return {"backend": self.name}


def _random_model_backend() -> TorchBackend:
    model = sharp_linknet()
    return TorchBackend(model, device="cpu")


def _image(h: int = 64, w: int = 96) -> np.ndarray:
    return (np.random.default_rng(3).random((h, w, 3)) * 255).astype(np.uint8)


@pytest.mark.parametrize("mode", ["none", "flip", "d4"])
def test_every_transform_is_exactly_undone(mode: str) -> None:
    x = np.random.default_rng(0).random((2, 1, 32, 64), dtype=np.float32)
    for transform in TRANSFORMS[mode]:
        assert np.array_equal(transform.invert(transform.apply(x)), x)


def test_group_sizes() -> None:
    assert len(TRANSFORMS["none"]) == 1 and len(TRANSFORMS["flip"]) == 4 and len(TRANSFORMS["d4"]) == 8
    x = np.arange(6.0).reshape(1, 1, 2, 3)
    images = {tuple(t.apply(x).flatten().tolist()) for t in TRANSFORMS["d4"]}
    assert len(images) == 8, "the 8 d4 transforms must all differ"


@pytest.mark.parametrize("mode", ["flip", "d4"])
def test_equivariant_model_is_unchanged_by_tta(mode: str) -> None:
    backend = SymmetricConvBackend()
    rgb = _image()
    plain = InferencePipeline(backend, PipelineConfig(tta="none")).predict_proba(rgb)
    augmented = InferencePipeline(backend, PipelineConfig(tta=mode)).predict_proba(rgb)  # type: ignore[arg-type]
    np.testing.assert_allclose(augmented, plain, atol=1e-6)


def test_d4_equals_direct_average_of_eight_inverted_passes() -> None:
    """The paper's TTA computed independently with numpy rot90/fliplr on the H×W×3 image."""
    backend = _random_model_backend()
    rgb = _image()

    def forward(image: np.ndarray) -> np.ndarray:
        return backend.run(image.transpose(2, 0, 1)[None].astype(np.float32))[0, 0]

    passes = []
    for flip in (False, True):
        base = np.fliplr(rgb) if flip else rgb
        for k in range(4):  # np.rot90 turns counter-clockwise, as torch.rot90 on (H, W)
            prob = np.rot90(forward(np.rot90(base, k)), -k)
            passes.append(np.fliplr(prob) if flip else prob)
    expected = np.mean(passes, axis=0)
    got = InferencePipeline(backend, PipelineConfig(tta="d4")).predict_proba(rgb)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    plain = InferencePipeline(backend, PipelineConfig(tta="none")).predict_proba(rgb)
    assert np.abs(plain - expected).max() > 1e-3, "the model must not be D4-invariant for this test to bite"


def test_scaled_sizes_stay_multiples_of_32() -> None:
    assert scaled_size(1024, 1024, 0.75) == (768, 768)
    assert scaled_size(1024, 512, 1.25) == (1280, 640)
    assert scaled_size(64, 96, 0.3) == (32, 32)


def test_multi_scale_resizes_back_and_averages() -> None:
    calls: list[tuple[int, ...]] = []

    def run(batch: np.ndarray) -> np.ndarray:
        calls.append(tuple(batch.shape))
        return np.full((batch.shape[0], 1, *batch.shape[-2:]), float(batch.shape[-1]), dtype=np.float32)

    out = predict_with_tta(np.zeros((1, 3, 64, 96), np.float32), run, "none", (0.5, 1.0, 1.5))
    assert calls == [(1, 3, 32, 64), (1, 3, 64, 96), (1, 3, 96, 160)]  # 48 -> 64, 144 -> 160: ties up
    assert out.shape == (1, 1, 64, 96) and out.dtype == np.float32
    np.testing.assert_allclose(out, np.full((1, 1, 64, 96), (64 + 96 + 160) / 3), rtol=1e-6)


def test_transforms_that_keep_the_shape_run_as_one_batch() -> None:
    """D4 on a square tile is one call of 8·N images; on a non-square tile, one call per orientation."""
    calls: list[tuple[int, ...]] = []

    def run(batch: np.ndarray) -> np.ndarray:
        calls.append(tuple(batch.shape))
        return np.full((batch.shape[0], 1, *batch.shape[-2:]), 0.25, dtype=np.float32)

    predict_with_tta(np.zeros((2, 3, 64, 64), np.float32), run, "d4")
    predict_with_tta(np.zeros((2, 3, 64, 96), np.float32), run, "d4")
    assert calls == [(16, 3, 64, 64), (8, 3, 64, 96), (8, 3, 96, 64)]


@pytest.mark.parametrize(("source", "target"), [((64, 96), (32, 64)), ((64, 96), (96, 160)), ((37, 50), (64, 32))])
def test_numpy_resize_matches_torch_bilinear(source: tuple[int, int], target: tuple[int, int]) -> None:
    """The torch-free resize is torch's ``interpolate(bilinear, align_corners=False)``."""
    x = np.random.default_rng(0).random((2, 3, *source), dtype=np.float32)
    expected = F.interpolate(torch.from_numpy(x), size=target, mode="bilinear", align_corners=False).numpy()
    np.testing.assert_allclose(resize_bilinear(x, target), expected, atol=2e-6, rtol=0)
