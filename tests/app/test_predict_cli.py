"""`nltool predict` end to end: outputs per format, overwrite rules, bad inputs leave nothing behind."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import sharp_linknet
from PIL import Image
from typer.testing import CliRunner

from nltool.app.cli import app
from nltool.inference import InferencePipeline, PipelineConfig
from nltool.inference.backends.torch_backend import TorchBackend
from nltool.models import load_checkpoint, save_checkpoint

runner = CliRunner()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = sharp_linknet()
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "linknet.pt", model)


@pytest.fixture
def images(tmp_path: Path) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for name, (h, w) in {"a.png": (100, 150), "b.jpg": (70, 64)}.items():
        path = tmp_path / "in" / name
        path.parent.mkdir(exist_ok=True)
        Image.fromarray((rng.random((h, w, 3)) * 255).astype(np.uint8)).save(path)
        paths.append(path)
    return paths


def _predict(*args: str) -> object:
    return runner.invoke(app, ["predict", *args])


def test_png_masks_match_the_pipeline(checkpoint: Path, images: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = _predict(*map(str, images), "--model", str(checkpoint), "--out", str(out), "--tta", "flip")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["a_mask.png", "b_mask.png"]
    mask = np.asarray(Image.open(out / "a_mask.png"))
    assert mask.shape == (100, 150) and set(np.unique(mask)) <= {0, 255}
    backend = TorchBackend(load_checkpoint(checkpoint).model, device="cpu")
    expected = InferencePipeline(backend, PipelineConfig(tta="flip")).predict_mask(np.asarray(Image.open(images[0])))
    assert np.array_equal(mask, expected)
    assert (out / "a_mask.png").stat().st_mode & 0o777 == 0o644 or (out / "a_mask.png").stat().st_mode & 0o044


def test_prob_and_tif_formats(checkpoint: Path, images: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert _predict(str(images[0]), "--model", str(checkpoint), "--out", str(out), "--format", "prob").exit_code == 0
    prob = np.asarray(Image.open(out / "a_prob.png"))
    assert prob.dtype == np.uint8 and prob.shape == (100, 150) and len(np.unique(prob)) > 2
    assert _predict(str(images[0]), "--model", str(checkpoint), "--out", str(out), "--format", "tif").exit_code == 0
    tif = np.asarray(Image.open(out / "a_mask.tif"))
    mask = np.asarray(Image.open(out / "a_prob.png"))
    assert tif.shape == (100, 150) and np.array_equal(tif == 255, mask > 127)


def test_existing_outputs_need_force(checkpoint: Path, images: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "a_mask.png").write_bytes(b"keep me")
    result = _predict(str(images[0]), "--model", str(checkpoint), "--out", str(out))
    assert result.exit_code == 1
    assert "already exist" in result.output and "--force" in result.output
    assert (out / "a_mask.png").read_bytes() == b"keep me"
    assert _predict(str(images[0]), "--model", str(checkpoint), "--out", str(out), "--force").exit_code == 0
    assert (out / "a_mask.png").read_bytes() != b"keep me"


@pytest.mark.parametrize("name,content,message", [
    ("empty.png", b"", "is empty"),
    ("text.jpg", b"hello, not an image", "is not a PNG, JPEG or TIFF/GeoTIFF image"),
    ("missing.png", None, "input not found"),
])
def test_bad_inputs_write_nothing(checkpoint: Path, tmp_path: Path, name: str, content: bytes | None,
                                  message: str) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    out = tmp_path / "out"
    result = _predict(str(path), "--model", str(checkpoint), "--out", str(out))
    assert result.exit_code == 1 and message in result.output
    assert not out.exists() or list(out.iterdir()) == []


def test_truncated_png_leaves_no_partial_file(checkpoint: Path, tmp_path: Path) -> None:
    Image.fromarray(np.zeros((256, 256, 3), np.uint8) + 7).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    result = _predict(str(tmp_path / "cut.png"), "--model", str(checkpoint), "--out", str(out))
    assert result.exit_code == 1 and "truncated or corrupt" in result.output
    assert list(out.iterdir()) == []  # no mask, no temporary file


def test_bad_option_values_are_usage_errors(checkpoint: Path, images: list[Path], tmp_path: Path) -> None:
    result = _predict(str(images[0]), "--model", str(checkpoint), "--out", str(tmp_path), "--tile", "1000")
    assert result.exit_code == 1 and "tile must be a positive multiple of 32" in result.output
    result = _predict(str(images[0]), "--model", str(checkpoint), "--out", str(tmp_path), "--scales", "0.75,big")
    assert result.exit_code == 2 and "not a list of numbers" in result.output
    result = _predict(str(images[0]), "--model", str(tmp_path / "model.bin"), "--out", str(tmp_path))
    assert result.exit_code == 1 and "model artifact not found" in result.output


def test_geotiff_in_geotiff_out_keeps_georeferencing(checkpoint: Path, tmp_path: Path) -> None:
    rasterio = pytest.importorskip("rasterio", reason="rasterio (the [geo] extra) is not installed")
    from rasterio.crs import CRS
    from rasterio.transform import from_origin

    data = (np.random.default_rng(4).random((3, 150, 170)) * 255).astype(np.uint8)
    data[:, :, :30] = 0  # nodata strip
    profile = {"driver": "GTiff", "height": 150, "width": 170, "count": 3, "dtype": "uint8", "nodata": 0,
               "crs": CRS.from_epsg(32631), "transform": from_origin(430000, 5400000, 0.3, 0.3)}
    with rasterio.open(tmp_path / "scene.tif", "w", **profile) as dst:
        dst.write(data)
    out = tmp_path / "out"
    result = _predict(str(tmp_path / "scene.tif"), "--model", str(checkpoint), "--out", str(out), "--format", "tif",
                      "--tile", "64", "--overlap", "32", "--threshold", "0.0")
    assert result.exit_code == 0, result.output
    with rasterio.open(out / "scene_mask.tif") as mask, rasterio.open(tmp_path / "scene.tif") as src:
        assert (mask.crs, mask.transform, mask.width, mask.height) == (src.crs, src.transform, 170, 150)
        pixels = mask.read(1)
        assert (pixels[:, :30] == 0).all(), "nodata is never road"
        assert (pixels[:, 30:] == 255).all()
        assert (mask.dataset_mask()[:, :30] == 0).all()


def test_the_chosen_backend_is_printed_and_impossible_choices_write_nothing(checkpoint: Path, images: list[Path],
                                                                             tmp_path: Path) -> None:
    """``--backend``/``--precision``: the choice is named; a choice nothing can run stops before any output."""
    out = tmp_path / "out"
    done = _run_script_predict(str(images[0]), "--model", str(checkpoint), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "backend: linknet.pt: torch fp32 on cpu (auto: the fastest installed" in done.stderr
    for options, message in ((["--backend", "onnxruntime"], "--backend onnxruntime cannot run linknet.pt"),
                             (["--precision", "int8"], "INT8 needs an INT8 artifact: nltool export --int8"),
                             (["--precision", "fp16", "--device", "cpu"], "fp16 runs on CUDA GPUs only")):
        failed = _run_script_predict(str(images[1]), "--model", str(checkpoint), "--out", str(tmp_path / "x"),
                                     *options)
        assert failed.returncode == 1 and message in failed.stderr, failed.stderr
        assert not list((tmp_path / "x").glob("*_mask.png"))


def test_package_refuses_a_backend_that_cannot_run_the_model(checkpoint: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["package", "--model", str(checkpoint), "--out", str(tmp_path / "store"), "--backend",
                                 "openvino"])
    assert result.exit_code == 1 and "--backend openvino cannot run linknet.pt" in result.output
    assert not (tmp_path / "store").exists() or not list((tmp_path / "store").iterdir())


def _run_script_predict(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["nltool", "predict", *args], capture_output=True, text=True, timeout=300)
