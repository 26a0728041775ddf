"""The inference pipeline: exact single-tile equivalence, seamless tiling, nodata, batching."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import sharp_linknet

from nltool.errors import ImageError
from nltool.inference import ArraySource, InferencePipeline, PipelineConfig
from nltool.inference.backends.torch_backend import TorchBackend


@pytest.fixture(scope="module")
def linknet_backend() -> TorchBackend:
    """A random baseline LinkNet whose outputs vary enough to threshold meaningfully."""
    model = sharp_linknet()
    return TorchBackend(model, device="cpu")


def _structured_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Stripes and gradients plus noise: spatial structure, unlike white noise."""
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.stack([np.sin(xx / 37.0) * 60 + 120, np.cos(yy / 53.0) * 60 + 120, ((xx + yy) % 200) / 200 * 255], -1)
    rgb += np.random.default_rng(seed).normal(0, 10, rgb.shape)
    return rgb.clip(0, 255).astype(np.uint8)


def test_single_tile_equals_one_direct_forward_pass(linknet_backend: TorchBackend) -> None:
    rgb = _structured_image(200, 300)
    prob = InferencePipeline(linknet_backend, PipelineConfig(tile=1024)).predict_proba(rgb)
    padded = np.pad(rgb, ((0, 24), (0, 20), (0, 0)), mode="reflect")  # to 224×320, multiples of 32
    direct = linknet_backend.run(padded.transpose(2, 0, 1)[None].astype(np.float32))[0, 0, :200, :300]
    assert prob.shape == (200, 300) and prob.dtype == np.float32
    np.testing.assert_allclose(prob, direct, atol=1e-5, rtol=0)


@pytest.mark.slow
def test_tiled_2500x1900_agrees_with_whole_image_inference(linknet_backend: TorchBackend) -> None:
    rgb = _structured_image(2500, 1900)
    whole = InferencePipeline(linknet_backend, PipelineConfig(tile=2528)).predict_proba(rgb)
    calls: list[int] = []
    tiled = InferencePipeline(linknet_backend, PipelineConfig(tile=1024, overlap=128, batch_size=2)).predict_proba(
        rgb, progress=calls.append)
    assert tiled.shape == (2500, 1900) and not np.isnan(tiled).any()
    assert sum(calls) == 6, "3 rows × 2 columns of 1024 tiles"
    threshold = float(np.median(whole))  # half the pixels road: a demanding comparison
    inner = (slice(64, -64), slice(64, -64))
    agreement = ((whole > threshold) == (tiled > threshold))[inner].mean()
    assert agreement >= 0.99, agreement
    assert np.abs(whole - tiled)[inner].max() < 0.01


def test_batch_size_does_not_change_the_result(linknet_backend: TorchBackend) -> None:
    rgb = _structured_image(300, 500)
    one = InferencePipeline(linknet_backend, PipelineConfig(tile=128, overlap=32, batch_size=1)).predict_proba(rgb)
    many = InferencePipeline(linknet_backend, PipelineConfig(tile=128, overlap=32, batch_size=5)).predict_proba(rgb)
    np.testing.assert_allclose(one, many, atol=1e-6)


def test_nodata_pixels_are_never_road(linknet_backend: TorchBackend) -> None:
    rgb = _structured_image(96, 128)
    valid = np.ones((96, 128), dtype=bool)
    valid[:, :40] = False
    pipeline = InferencePipeline(linknet_backend, PipelineConfig(threshold=0.0))
    mask = pipeline.predict_mask(rgb, valid)
    assert (mask[:, :40] == 0).all() and (mask[:, 40:] == 255).all()


def test_streaming_sink_receives_each_row_once(linknet_backend: TorchBackend) -> None:
    class RowRecorder:
        def __init__(self) -> None:
            self.rows: list[tuple[int, int]] = []

        def write_rows(self, y0: int, prob: np.ndarray, valid: np.ndarray | None) -> None:
            self.rows.append((y0, prob.shape[0]))

    sink = RowRecorder()
    pipeline = InferencePipeline(linknet_backend, PipelineConfig(tile=128, overlap=32))
    pipeline.run(ArraySource(_structured_image(400, 100)), sink)
    covered = [y for y0, n in sink.rows for y in range(y0, y0 + n)]
    assert covered == list(range(400))
    assert max(n for _, n in sink.rows) <= 128, "memory is bounded by one strip"


@pytest.mark.parametrize("shape,message", [((1, 1, 3), "1×1 pixels"), ((20, 400, 3), "400×20 pixels")])
def test_too_small_images_are_refused(linknet_backend: TorchBackend, shape: tuple[int, ...], message: str) -> None:
    with pytest.raises(ImageError, match=message):
        InferencePipeline(linknet_backend).predict_proba(np.zeros(shape, dtype=np.uint8))


def test_pixel_limit(linknet_backend: TorchBackend) -> None:
    with pytest.raises(ImageError, match="above the limit of 0.0 megapixels"):
        InferencePipeline(linknet_backend, PipelineConfig(max_pixels=2048)).predict_proba(
            np.zeros((64, 64, 3), dtype=np.uint8))
