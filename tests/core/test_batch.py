"""Batch prediction: input lists, resumable plans, and ``nltool predict --engine ray`` on a real
local Ray (2 CPUs) against ``--engine local``: byte-identical GeoTIFF masks, georeferencing kept,
a rerun that does nothing, and a corrupt scene reported while the others are written."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import sharp_linknet
from typer.testing import CliRunner

from nltool.app.cli import app
from nltool.batch.inputs import expand_inputs
from nltool.batch.records import RunRecord, plan_batch, record_path
from nltool.errors import ImageError, OutputExistsError
from nltool.inference import PipelineConfig
from nltool.inference.jobs import PredictResult
from nltool.models import save_checkpoint

runner = CliRunner()
OPTIONS = ["--format", "tif", "--tile", "128", "--overlap", "32", "--threshold", "0.7", "--device", "cpu"]
"""Small tiles so a 300-row scene is three strips; 0.7 splits this random model's road
probabilities on noise roughly in half, so the masks are far from all-road."""


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_inputs_from_folders_globs_and_manifests(tmp_path: Path) -> None:
    a, b = _touch(tmp_path / "scenes" / "a.tif"), _touch(tmp_path / "scenes" / "sub" / "b.png")
    _touch(tmp_path / "scenes" / "notes.md")
    _touch(tmp_path / "scenes" / ".hidden" / "c.tif")
    out = tmp_path / "scenes" / "masks"
    _touch(out / "a_mask.tif")
    assert expand_inputs([tmp_path / "scenes"], exclude=out) == [a, b]
    assert expand_inputs([Path(f"{tmp_path}/scenes/**/*.png")]) == [b]
    manifest = tmp_path / "list.txt"
    manifest.write_text("# today's scenes\nscenes/sub/b.png\n\n" + f"{a}\n")
    assert expand_inputs([manifest, a]) == [b, a], "relative to the manifest, each path once"
    assert expand_inputs([tmp_path / "missing.tif"]) == [tmp_path / "missing.tif"], "reported by the caller"
    with pytest.raises(ImageError, match="no files match"):
        expand_inputs([Path(f"{tmp_path}/*.jp2")])


def test_plan_skips_current_outputs_redoes_changed_ones_and_refuses_foreign_ones(tmp_path: Path) -> None:
    model = tmp_path / "model.pt"
    model.write_bytes(b"weights")
    inputs = [_touch(tmp_path / f"{name}.tif") for name in "abc"]
    out = tmp_path / "out"
    record = RunRecord.for_run(model, PipelineConfig(), "png")
    first = plan_batch(inputs, out, "png", record, force=False)
    assert [job.input for job in first.todo] == inputs and not first.skipped
    for job in first.todo:
        job.output.write_bytes(b"mask")
        record.write(job, PredictResult(job.output, 64, 64, 0.5, 1.0), "ray")
    assert [job.input for job in plan_batch(inputs, out, "png", record, force=False).skipped] == inputs
    assert len(plan_batch(inputs, out, "png", record, force=True).todo) == 3
    for job in first.todo:
        record.write(job, PredictResult(job.output, 64, 64, 0.5, 1.0), "ray")
    other = RunRecord.for_run(model, PipelineConfig(threshold=0.6), "png")
    redo = plan_batch(inputs, out, "png", other, force=False)
    assert len(redo.todo) == 3 and not any(record_path(job.output).exists() for job in redo.todo)
    (out / "b_mask.png").write_bytes(b"someone else's")
    with pytest.raises(OutputExistsError, match="pass --force"):
        plan_batch(inputs, out, "png", other, force=False)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Four GeoTIFF scenes (one of three strips, one with a nodata strip) and a tiny model."""
    rasterio = pytest.importorskip("rasterio", reason="rasterio (the [geo] extra) is not installed")
    from rasterio.crs import CRS
    from rasterio.transform import from_origin

    folder = tmp_path_factory.mktemp("batch")
    model = sharp_linknet()
    paths = {"model": save_checkpoint(folder / "model.pt", model)}
    rng = np.random.default_rng(0)
    for i, (name, (h, w)) in enumerate({"a": (300, 420), "b": (100, 150), "c": (130, 96), "d": (200, 200)}.items()):
        data = (rng.random((3, h, w)) * 255).astype(np.uint8)
        profile = {"driver": "GTiff", "height": h, "width": w, "count": 3, "dtype": "uint8", "compress": "deflate",
                   "crs": CRS.from_epsg(32631 + i), "transform": from_origin(430000 + i, 5400000, 0.3, 0.3)}
        if name == "c":
            profile["nodata"] = 0
            data[:, :, :20] = 0
        paths[name] = folder / "scenes" / f"{name}.tif"
        paths[name].parent.mkdir(exist_ok=True)
        with rasterio.open(paths[name], "w", **profile) as dst:
            dst.write(data)
    return paths


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray", reason="Ray (the [ray] extra) is not installed")
    ray.init(num_cpus=2, include_dashboard=False)
    yield ray
    ray.shutdown()


def _predict(*args: object) -> object:
    return runner.invoke(app, ["predict", *map(str, args)])


@pytest.mark.slow
def test_ray_engine_matches_local_resumes_and_survives_a_corrupt_scene(scenes: dict[str, Path], local_ray,
                                                                       tmp_path: Path) -> None:
    import rasterio

    folder, model = scenes["a"].parent, scenes["model"]
    local = _predict(folder, "--model", model, "--out", tmp_path / "local", *OPTIONS)
    assert local.exit_code == 0, local.output
    ray_out = tmp_path / "ray"
    first = _predict(folder, "--model", model, "--out", ray_out, *OPTIONS, "--engine", "ray", "--actors", "2")
    assert first.exit_code == 0, first.output
    names = sorted(p.name for p in (tmp_path / "local").iterdir())
    assert names == ["a_mask.tif", "b_mask.tif", "c_mask.tif", "d_mask.tif"]
    for name in names:
        expected, got = tmp_path / "local" / name, ray_out / name
        assert got.read_bytes() == expected.read_bytes(), name
        with rasterio.open(got) as mask, rasterio.open(folder / name.replace("_mask", "")) as src:
            assert (mask.crs, mask.transform, mask.shape) == (src.crs, src.transform, src.shape)
            assert 0.2 < (mask.read(1) == 255).mean() < 0.8, "a mask worth comparing"
    stamps = {p.name: p.stat().st_mtime_ns for p in ray_out.iterdir()}

    rerun = _predict(folder, "--model", model, "--out", ray_out, *OPTIONS, "--engine", "ray", "--actors", "2")
    assert rerun.exit_code == 0, rerun.output
    assert {p.name: p.stat().st_mtime_ns for p in ray_out.iterdir()} == stamps, "a rerun rewrites nothing"

    damaged = tmp_path / "damaged"
    shutil.copytree(folder, damaged)
    data = bytearray((damaged / "d.tif").read_bytes())
    data[len(data) // 3: 2 * len(data) // 3] = b"\x13" * (2 * len(data) // 3 - len(data) // 3)
    (damaged / "d.tif").write_bytes(data)  # the header still opens; its pixels do not decode
    out = tmp_path / "with_corrupt"
    result = _predict(damaged, "--model", model, "--out", out, *OPTIONS, "--engine", "ray", "--actors", "2")
    assert result.exit_code == 1, result.output  # the exit status counts the failed scenes
    assert "d.tif" in result.output and "truncated or corrupt" in result.output
    written = sorted(p.name for p in out.iterdir() if p.suffix == ".tif")
    assert written == ["a_mask.tif", "b_mask.tif", "c_mask.tif"]
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == [], "no temporary files left"
    for name in written:
        assert (out / name).read_bytes() == (tmp_path / "local" / name).read_bytes()
