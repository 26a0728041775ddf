"""``nltool evaluate --apls``: per-image and mean APLS in the report, truth from masks or from ``--graphs``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

pytest.importorskip("sknw", reason="the [vector] extra (sknw, scikit-image, shapely, pyproj) is not installed")

import torch
from typer.testing import CliRunner

from nltool.app.cli import app
from nltool.data.synth import SynthConfig, write_synthetic_dataset
from nltool.models import build_model, save_checkpoint

runner = CliRunner()
SCENES = ["synth_000000", "synth_000001"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """Two 128 px synthetic scenes, a random linknet checkpoint and one that predicts no road anywhere."""
    root = tmp_path_factory.mktemp("evaluate_apls")
    write_synthetic_dataset(root / "scenes", SynthConfig(n=2, size=128, seed=3))
    torch.manual_seed(0)
    random = save_checkpoint(root / "random.pt", build_model("linknet"))
    blind = build_model("linknet")
    head = [m for m in blind.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d)][-1]
    with torch.no_grad():
        head.weight.zero_()
        head.bias.fill_(-20.0)  # probability ~2e-9 everywhere
    return root / "scenes", random, save_checkpoint(root / "blind.pt", blind)


def _evaluate(model: Path, data: Path, report: Path, *extra: str) -> dict:
    result = runner.invoke(app, ["evaluate", "--model", str(model), "--data", str(data), "--device", "cpu",
                                 "--tta", "none", "--tile", "128", "--overlap", "0", "--json", str(report), *extra])
    assert result.exit_code == 0, result.output
    assert "mean_apls_per_image" in result.output
    return json.loads(report.read_text())


def test_evaluate_apls_reports_per_image_and_mean(setup: tuple[Path, Path, Path], tmp_path: Path) -> None:
    data, random, _ = setup
    report = _evaluate(random, data, tmp_path / "masks.json", "--apls")
    section = report["apls"]
    assert section["truth"] == "masks" and sorted(section["per_image"]) == SCENES
    values = []
    for scene in SCENES:
        entry = section["per_image"][scene]
        values.append(1.0 if entry is None else entry["apls"])
        if entry is not None:
            assert 0.0 <= entry["truth_to_proposal"] <= 1.0 and 0.0 <= entry["proposal_to_truth"] <= 1.0
    assert section["mean_apls_per_image"]["value"] == pytest.approx(math.fsum(values) / len(values))
    assert section["settings"]["max_snap_dist_m"] == 4.0
    assert sorted(report["per_image"]) == SCENES  # the IoU report is still there


def test_evaluate_graphs_folder_is_the_truth(setup: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """``--graphs`` scores against the folder's networks: the networks ``predict --vectors`` drew from the
    model's own masks score 1 on every scene, the truth masks' networks score 0 against a model that
    predicts no road, and a scene without its graph is a clear error."""
    data, random, blind = setup
    own, truth = tmp_path / "own", tmp_path / "truth"
    truth.mkdir()
    done = runner.invoke(app, ["predict", *(str(data / f"{s}_sat.jpg") for s in SCENES), "--model", str(random),
                               "--out", str(tmp_path / "predicted"), "--device", "cpu", "--tta", "none", "--tile",
                               "128", "--overlap", "0", "--vectors", "geojson"])
    assert done.exit_code == 0, done.output
    own.mkdir()
    for scene in SCENES:
        (tmp_path / "predicted" / f"{scene}_roads.geojson").rename(own / f"{scene}.geojson")
        done = runner.invoke(app, ["vectorize", str(data / f"{scene}_mask.png"), "--out",
                                   str(truth / f"{scene}.geojson")])
        assert done.exit_code == 0, done.output

    mine = _evaluate(random, data, tmp_path / "own.json", "--graphs", str(own))["apls"]
    assert mine["truth"] == "graphs" and sorted(mine["per_image"]) == SCENES
    scored = [entry["apls"] for entry in mine["per_image"].values() if entry is not None]
    assert scored and scored == pytest.approx([1.0] * len(scored))  # scenes where neither has road are null
    assert mine["mean_apls_per_image"]["value"] == pytest.approx(1.0)

    nothing = _evaluate(blind, data, tmp_path / "blind.json", "--graphs", str(truth))["apls"]
    assert [nothing["per_image"][s]["apls"] for s in SCENES] == [0.0, 0.0]
    assert nothing["mean_apls_per_image"]["value"] == 0.0

    (truth / f"{SCENES[1]}.geojson").unlink()
    missing = runner.invoke(app, ["evaluate", "--model", str(random), "--data", str(data), "--device", "cpu",
                                  "--tta", "none", "--tile", "128", "--overlap", "0", "--graphs", str(truth)])
    assert missing.exit_code != 0
    assert f"no truth network {truth / SCENES[1]}.geojson" in " ".join(missing.output.split())
