"""Training: the loss falls, resume is exact, bad data fails first, the paper's schedule, DDP on gloo."""

from __future__ import annotations

import functools
import json
import operator
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from nltool.app.cli import app
from nltool.data.synth import SynthConfig, write_synthetic_dataset
from nltool.models import load_checkpoint
from nltool.training.config import TrainConfig
from nltool.training.sampling import EpochSampler
from nltool.training.schedule import PlateauSchedule
from nltool.training.trainer import Trainer

runner = CliRunner()


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("scenes")
    write_synthetic_dataset(root / "train", SynthConfig(n=8, size=64, seed=1))
    write_synthetic_dataset(root / "val", SynthConfig(n=2, size=64, seed=2))
    return root / "train", root / "val"


def _config(scenes: tuple[Path, Path], out: Path, **overrides: object) -> TrainConfig:
    settings: dict = dict(data=scenes[0], val=scenes[1], out=out, arch="linknet", encoder_weights="none", crop=64,
                          batch_size=2, workers=0, device="cpu", seed=3, samples_per_epoch=8)  # one pass, 4 steps
    settings.update(overrides)
    return TrainConfig(**settings)


def _quiet(config: TrainConfig, resume: Path | None = None) -> Trainer:
    return Trainer(config, resume=resume, log=lambda msg: None, show_progress=False)


def test_loss_falls_and_run_folder_is_complete(scenes: tuple[Path, Path], tmp_path: Path) -> None:
    result = _quiet(_config(scenes, tmp_path / "run", max_steps=16, lr=1e-3)).fit()
    losses = [row["train_loss"] for row in result.history]
    assert len(losses) == 4 and losses[-1] < losses[0], losses
    files = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert files == ["best.pt", "config.json", "last.pt", "metrics.jsonl", "split.json"]
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0, 1, 2, 3] and all("val_mean_iou" in r for r in rows)
    split = json.loads((tmp_path / "run" / "split.json").read_text())
    assert len(split["train"]) == 8 and len(split["val"]) == 2
    best = load_checkpoint(result.best)
    assert best.metadata.metric_name == "val_mean_iou"
    assert best.metadata.best_metric == max(r["val_mean_iou"] for r in rows)
    assert best.metadata.training_config["crop"] == 64


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(scenes: tuple[Path, Path], tmp_path: Path) -> None:
    whole = _quiet(_config(scenes, tmp_path / "whole", max_steps=7)).fit()
    first = _quiet(_config(scenes, tmp_path / "split", max_steps=3)).fit()  # stops mid-epoch (4 steps/epoch)
    assert first.global_step == 3
    resumed = _quiet(_config(scenes, tmp_path / "split", max_steps=7), resume=first.last).fit()
    assert resumed.global_step == 7
    a = load_checkpoint(whole.last).model.state_dict()
    b = load_checkpoint(resumed.last).model.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_schedule_follows_the_authors_loop() -> None:
    schedule = PlateauSchedule(lr=3e-4, lr_factor=0.2, plateau_patience=3, early_stop_patience=6)
    actions = [schedule.step(loss) for loss in [1.0, 0.9, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95]]
    assert actions == ["improved", "improved", "continue", "continue", "continue", "reduce_lr", "reduce_lr",
                       "reduce_lr", "stop"]
    assert schedule.lr == pytest.approx(3e-4 * 0.2**3)
    restored = PlateauSchedule(lr=1.0)
    restored.load_state_dict(schedule.state_dict())
    assert restored == schedule


def test_plateau_reduces_lr_and_reloads_best_weights(scenes: tuple[Path, Path], tmp_path: Path) -> None:
    """With patience 0, every epoch that does not lower the loss cuts the lr by 5."""
    result = _quiet(_config(scenes, tmp_path / "run", epochs=5, plateau_patience=0, early_stop_patience=10,
                            lr=0.5)).fit()  # an absurd lr makes the loss rise
    lrs = [row["lr"] for row in result.history]
    actions = [row["action"] for row in result.history]
    assert "reduce_lr" in actions[:-1], actions
    first_cut = actions.index("reduce_lr")
    assert lrs[first_cut + 1] == pytest.approx(lrs[first_cut] * 0.2)


def test_epoch_sampler_splits_ranks_and_skips() -> None:
    """Ten images of one size, ten crops an epoch: each image once (one pass over the files)."""
    areas = [64 * 64] * 10
    full = EpochSampler(areas, 10, seed=1, epoch=2).indices
    assert sorted(full) == list(range(10))
    assert full == EpochSampler(areas, 10, seed=1, epoch=2).indices != EpochSampler(areas, 10, seed=1, epoch=3).indices
    ranks = [EpochSampler(areas, 10, seed=1, epoch=2, rank=r, world_size=3).indices for r in range(3)]
    assert all(len(r) == 4 for r in ranks) and set(functools.reduce(operator.iadd, ranks, [])) == set(range(10))
    assert EpochSampler(areas, 10, seed=1, epoch=2, skip=4).indices == full[4:]


def _bad(folder: Path, case: str) -> str:
    """Break a copy of a small dataset in one way; returns the file name the error must mention."""
    write_synthetic_dataset(folder, SynthConfig(n=3, size=64, seed=5))
    if case == "empty":
        for path in folder.iterdir():
            path.unlink()
        return str(folder)
    if case == "missing mask":
        (folder / "synth_000001_mask.png").unlink()
        return "synth_000001_mask.png"
    if case == "corrupt jpeg":
        data = (folder / "synth_000002_sat.jpg").read_bytes()
        (folder / "synth_000002_sat.jpg").write_bytes(data[: len(data) // 3])
        return "synth_000002_sat.jpg"
    Image.new("L", (32, 64)).save(folder / "synth_000000_mask.png")
    return "synth_000000_mask.png"


@pytest.mark.parametrize("case", ["empty", "missing mask", "corrupt jpeg", "mask of another size"])
def test_bad_data_fails_before_training_and_names_the_file(tmp_path: Path, case: str) -> None:
    name = _bad(tmp_path / "data", case)
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "--data", str(tmp_path / "data"), "--out", str(out), "--arch", "linknet",
                                 "--encoder-weights", "none", "--crop", "64", "--workers", "0", "--max-steps", "1"])
    assert result.exit_code == 1, result.output
    assert name in result.output
    assert not (out / "last.pt").exists() and not (out / "best.pt").exists()


def test_existing_run_is_not_overwritten(scenes: tuple[Path, Path], tmp_path: Path) -> None:
    _quiet(_config(scenes, tmp_path / "run", max_steps=1)).fit()
    before = (tmp_path / "run" / "last.pt").read_bytes()
    result = runner.invoke(app, ["train", "--data", str(scenes[0]), "--out", str(tmp_path / "run"),
                                 "--encoder-weights", "none"])
    assert result.exit_code == 2 and "--resume" in result.output
    assert (tmp_path / "run" / "last.pt").read_bytes() == before


def test_evaluate_reports_both_metrics(scenes: tuple[Path, Path], tmp_path: Path) -> None:
    result = _quiet(_config(scenes, tmp_path / "run", max_steps=2)).fit()
    report_path = tmp_path / "eval.json"
    out = runner.invoke(app, ["evaluate", "--model", str(result.best), "--data", str(scenes[1]), "--device", "cpu",
                              "--tta", "d4", "--json", str(report_path)])
    assert out.exit_code == 0, out.output
    report = json.loads(report_path.read_text())
    assert report["n_images"] == 2 and set(report["per_image"]) == {"synth_000000", "synth_000001"}
    assert 0 <= report["mean_iou_per_image"]["value"] <= 1 and 0 <= report["pooled_iou"]["value"] <= 1
    assert "averaged over images" in report["mean_iou_per_image"]["definition"]
    assert report["pipeline"]["tta"] == "d4"
    assert "mean_iou_per_image" in out.output and "pooled_iou" in out.output


@pytest.mark.slow
def test_two_process_gloo_ddp_writes_one_checkpoint(scenes: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "nltool.training", "--data", str(scenes[0]), "--val", str(scenes[1]), "--out", str(out), "--arch",
           "linknet", "--encoder-weights", "none", "--crop", "64", "--batch-size", "2", "--workers", "0",
           "--max-steps", "4", "--device", "cpu", "--samples-per-epoch", "8"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["best.pt", "config.json", "last.pt", "metrics.jsonl", "split.json"]
    rows = (out / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 2, "8 scenes / (2 ranks × batch 2) = 2 steps an epoch; only rank 0 logs"
    assert load_checkpoint(out / "last.pt").metadata.training_config["max_steps"] == 4
    assert result.stdout.count("trained 4 steps") == 1, "only rank 0 reports"
