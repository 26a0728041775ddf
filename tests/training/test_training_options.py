"""Training on small datasets and fine-tuning: sampled epochs, the authors' schedule, --init and the frozen
encoder, --config files, --val-every, --accumulate, and `nltool data split`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import typer
from conftest import random_state_dict
from typer.testing import CliRunner

from nltool.app.cli import app
from nltool.data.deepglobe import DatasetError, find_pairs, split_samples
from nltool.data.split import write_split
from nltool.data.synth import SynthConfig, write_synthetic_dataset
from nltool.errors import CheckpointError
from nltool.models import build_model, load_checkpoint, save_checkpoint
from nltool.training.config import TrainConfig, TrainConfigError, load_config_file, resolve_train_config
from nltool.training.sampling import crops_per_image, default_samples_per_epoch
from nltool.training.schedule import PlateauSchedule
from nltool.training.trainer import Trainer

runner = CliRunner()
TINY = ["--arch", "linknet", "--encoder-weights", "none", "--crop", "64", "--workers", "0", "--device", "cpu"]


@pytest.fixture(scope="module")
def two_scenes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two 64² training scenes and one validation scene: a user's small dataset, in miniature."""
    root = tmp_path_factory.mktemp("small")
    write_synthetic_dataset(root / "train", SynthConfig(n=2, size=64, seed=1))
    write_synthetic_dataset(root / "val", SynthConfig(n=1, size=64, seed=2))
    return root / "train", root / "val"


def _quiet(config: TrainConfig, resume: Path | None = None) -> Trainer:
    return Trainer(config, resume=resume, log=lambda msg: None, show_progress=False)


def _rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


# -- what an epoch is -------------------------------------------------------------------------------
def test_a_two_image_dataset_runs_the_whole_step_budget(two_scenes: tuple[Path, Path], tmp_path: Path) -> None:
    """Two images are one batch; an epoch is still 100 steps, so the plateau rule cannot fire on single batches."""
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", "--data", str(two_scenes[0]), "--val", str(two_scenes[1]), "--out", str(run),
                                 *TINY, "--batch-size", "2", "--max-steps", "40"])
    assert result.exit_code == 0, result.output
    assert "trained 40 steps" in result.output and "reached --max-steps 40" in result.output
    epoch = json.loads((run / "split.json").read_text())["epoch"]
    assert epoch == {"samples_per_epoch": 200, "default": True, "steps_per_epoch": 100, "effective_batch_size": 2,
                     "pixel_coverage": 100.0}
    rows = _rows(run)
    assert rows[-1]["global_step"] == 40 and "val_mean_iou" in rows[-1]
    assert not any("action" in row for row in rows), "no epoch ended, so the schedule never ran"
    assert load_checkpoint(run / "last.pt").metadata.training_config["max_steps"] == 40


def test_crops_are_drawn_in_proportion_to_image_area() -> None:
    # One 8000² scene and eight 1024² tiles: the scene's share of the pixels is its share of the crops.
    areas = [8000 * 8000] + [1024 * 1024] * 8
    counts = crops_per_image(areas, 1000, seed=0, epoch=0)
    assert sum(counts) == 1000
    for area, count in zip(areas, counts, strict=True):
        assert abs(count - 1000 * area / sum(areas)) < 1
    # Same-size images, one crop each: every image exactly once (one pass over the files).
    assert crops_per_image([1024 * 1024] * 7, 7, seed=3, epoch=5) == [1] * 7
    # Fractional shares are drawn, and on average exact: 1 crop over areas 3:1 lands 3:1.
    firsts = sum(crops_per_image([3, 1], 1, seed=0, epoch=e)[0] for e in range(2000))
    assert 1400 < firsts < 1600


def test_default_epoch_is_one_pass_on_deepglobe_and_100_steps_on_tiny_data() -> None:
    assert default_samples_per_epoch([1024 * 1024] * 6226, crop=1024, samples_per_step=4) == 6226
    assert default_samples_per_epoch([1024 * 1024] * 6226, crop=512, samples_per_step=4) == 4 * 6226
    assert default_samples_per_epoch([650 * 650] * 2, crop=256, samples_per_step=4) == 400


# -- the schedule -----------------------------------------------------------------------------------
def test_default_schedule_is_the_nl_linknet_authors_train_py() -> None:
    """lr / 5 after more than 5 epochs without a lower loss, stop after more than 8."""
    schedule = PlateauSchedule(lr=3e-4)
    actions = [schedule.step(loss) for loss in [1.0, *[1.0] * 9]]
    assert actions == ["improved", *["continue"] * 5, "reduce_lr", "reduce_lr", "reduce_lr", "stop"]
    assert schedule.stop_reason == "early_stop" and "--early-stop-patience 8" in schedule.describe_stop()
    low = PlateauSchedule(lr=4e-6, plateau_patience=0)
    assert [low.step(loss) for loss in (1.0, 1.0)] == ["improved", "stop"]
    assert low.stop_reason == "min_lr" and "--min-lr 5e-06" in low.describe_stop()


def test_the_closing_summary_says_why_the_run_ended(two_scenes: tuple[Path, Path], tmp_path: Path) -> None:
    """One-step epochs and a --min-lr above the lr: the first epoch without a lower loss ends the run."""
    config = TrainConfig(data=two_scenes[0], val=two_scenes[1], out=tmp_path / "run", arch="linknet",
                         encoder_weights="none", crop=64, batch_size=2, samples_per_epoch=2, workers=0, device="cpu",
                         plateau_patience=0, min_lr=1.0, lr=0.5, epochs=20)
    result = _quiet(config).fit()
    assert result.stop_reason == "min_lr" and result.stopped_early
    assert "below --min-lr" in result.stop_message and result.global_step < 20


# -- fine-tuning ------------------------------------------------------------------------------------
def test_init_from_an_authors_th_then_frozen_encoder(two_scenes: tuple[Path, Path], tmp_path: Path,
                                                     authors_keys) -> None:
    th = tmp_path / "NL34_LinkNet.th"
    torch.save(random_state_dict(authors_keys["nl34-linknet"], seed=4), th)
    source = load_checkpoint(th, arch="nl34-linknet").model
    config = TrainConfig(data=two_scenes[0], val=two_scenes[1], out=tmp_path / "run", init=th, arch="nl34-linknet",
                         crop=64, batch_size=2, samples_per_epoch=4, max_steps=2, freeze_encoder_steps=2, workers=0,
                         device="cpu", channels_last=False)  # the same memory layout as the source: bitwise equal
    start = _quiet(config).initial_model().eval()
    x = torch.rand(1, 3, 64, 96, generator=torch.Generator().manual_seed(1)) * 255
    with torch.inference_mode():
        assert torch.equal(start(x), source.eval()(x)), "weights only, nothing else changes the output"

    frozen = _quiet(config).fit()
    assert frozen.global_step == 2 and all(row.get("encoder_frozen") for row in frozen.history)
    trained = load_checkpoint(frozen.last).model
    resnet_keys = source.encoder.resnet_state_dict_keys()
    for key, value in source.encoder.state_dict().items():
        if key in resnet_keys:  # weights and BatchNorm statistics alike
            assert torch.equal(trained.encoder.state_dict()[key], value), key
    assert not torch.equal(trained.decoder.head.conv3.weight, source.decoder.head.conv3.weight)

    unfrozen = _quiet(replace(config, max_steps=3), resume=frozen.last).fit()  # step 3 is past the freeze
    after = load_checkpoint(unfrozen.last).model
    assert not torch.equal(after.encoder.conv1.weight, source.encoder.conv1.weight)


def test_init_from_an_nltool_checkpoint_takes_its_arch(tmp_path: Path) -> None:
    torch.manual_seed(0)
    checkpoint = save_checkpoint(tmp_path / "best.pt", build_model("nl4-linknet", pairwise="gaussian"))
    config = resolve_train_config(None, {"data": tmp_path, "out": tmp_path / "run", "init": checkpoint})
    assert (config.arch, config.pairwise) == ("nl4-linknet", "gaussian")
    th = tmp_path / "raw.th"
    torch.save(build_model("linknet").state_dict(), th)
    with pytest.raises(CheckpointError, match="--arch"):  # a raw state dict does not say what it is
        resolve_train_config(None, {"data": tmp_path, "out": tmp_path / "run", "init": th})


# -- config files -----------------------------------------------------------------------------------
def test_config_round_trip_repeats_a_run(two_scenes: tuple[Path, Path], tmp_path: Path) -> None:
    """A TOML file plus a command-line option that wins; the run's config.json then repeats it exactly."""
    (tmp_path / "small.toml").write_text(
        f'data = "{two_scenes[0]}"\nval = "{two_scenes[1]}"\nout = "first"\narch = "linknet"\n'
        'encoder-weights = "none"\ncrop = 64\nbatch_size = 2\nmax_steps = 3\nworkers = 0\ndevice = "cpu"\n'
        "seed = 5\nlr = 0.1\n")
    first = runner.invoke(app, ["train", "--config", str(tmp_path / "small.toml"), "--lr", "0.001"])
    assert first.exit_code == 0, first.output
    written = json.loads((tmp_path / "first" / "config.json").read_text())
    assert written["lr"] == 0.001 and written["seed"] == 5 and written["crop"] == 64
    assert written["out"] == str(tmp_path / "first"), "relative paths in a file are relative to the file"

    again = runner.invoke(app, ["train", "--config", str(tmp_path / "first" / "config.json"),
                                "--out", str(tmp_path / "again")])
    assert again.exit_code == 0, again.output
    a = load_checkpoint(tmp_path / "first" / "last.pt").model.state_dict()
    b = load_checkpoint(tmp_path / "again" / "last.pt").model.state_dict()
    assert all(torch.equal(a[key], b[key]) for key in a)


def test_yaml_config_and_the_errors_a_file_can_raise(tmp_path: Path) -> None:
    (tmp_path / "run.yaml").write_text("data: scenes\nout: /tmp/run\nbatch-size: 8\naccumulate: 2\nval_every: 50\n"
                                       "lr: 1e-4\n")  # YAML 1.1 reads 1e-4 as a string; it is a number here
    values = load_config_file(tmp_path / "run.yaml")
    config = TrainConfig.from_dict(values)
    assert (config.data, config.batch_size, config.accumulate, config.val_every) == (tmp_path / "scenes", 8, 2, 50)
    assert config.lr == 1e-4 and config.out == Path("/tmp/run")
    with pytest.raises(TrainConfigError, match="unknown option.*batchsize"):
        TrainConfig.from_dict({**values, "batchsize": 4})
    with pytest.raises(TrainConfigError, match="crop must be a whole number"):
        TrainConfig.from_dict({**values, "crop": "256"})
    with pytest.raises(TrainConfigError, match="--data must be given"):
        TrainConfig.from_dict({"out": "x"})
    (tmp_path / "bad.toml").write_text("crop = [")
    with pytest.raises(TrainConfigError, match=r"bad\.toml is not valid TOML"):
        load_config_file(tmp_path / "bad.toml")
    with pytest.raises(TrainConfigError, match="must end in"):
        load_config_file(tmp_path / "run.ini")


def test_command_line_defaults_are_the_config_defaults() -> None:
    """The help text shows TrainConfig's defaults (an option left out takes TrainConfig's value)."""
    command = typer.main.get_command(app).commands["train"]  # type: ignore[attr-defined]
    defaults = {f: v for f, v in TrainConfig.__dataclass_fields__.items() if f not in ("data", "out")}
    for param in command.params:
        if param.name in defaults:
            default = getattr(param.default, "value", param.default)
            assert default == defaults[param.name].default, param.name
    assert {p.name for p in command.params} >= set(defaults), "every TrainConfig field is an option"


# -- validation cadence and accumulation -------------------------------------------------------------
def test_val_every_and_accumulate(two_scenes: tuple[Path, Path], tmp_path: Path) -> None:
    logs: list[str] = []
    config = TrainConfig(data=two_scenes[0], val=two_scenes[1], out=tmp_path / "run", arch="linknet",
                         encoder_weights="none", crop=64, batch_size=1, accumulate=2, samples_per_epoch=8,
                         max_steps=5, val_every=2, workers=0, device="cpu")
    result = Trainer(config, log=logs.append, show_progress=False).fit()
    assert (result.steps_per_epoch, result.effective_batch_size, result.global_step) == (4, 2, 5)
    assert any("effective batch size 2 = 1 × 2 accumulated × 1 process" in line for line in logs)
    validated = [row["global_step"] for row in result.history if "val_mean_iou" in row]
    assert validated == [2, 4, 5], "every 2 steps, and at the end of the run"
    assert [row["global_step"] for row in result.history if row["epoch_complete"]] == [4]


# -- data split -------------------------------------------------------------------------------------
def test_data_split_writes_the_training_split_to_disk(tmp_path: Path) -> None:
    write_synthetic_dataset(tmp_path / "all", SynthConfig(n=4, size=32, seed=0))
    result = runner.invoke(app, ["data", "split", "--data", str(tmp_path / "all"), "--val-fraction", "0.25",
                                 "--seed", "7", "--out", str(tmp_path / "split")])
    assert result.exit_code == 0, result.output
    train, val = split_samples(find_pairs(tmp_path / "all"), 0.25, 7)
    assert [s.id for s in find_pairs(tmp_path / "split" / "train")] == [s.id for s in train]
    assert [s.id for s in find_pairs(tmp_path / "split" / "val")] == [s.id for s in val]
    placed = tmp_path / "split" / "val" / val[0].image.name
    assert placed.samefile(val[0].image), "a link, not a copy, on one filesystem"
    assert json.loads((tmp_path / "split" / "split.json").read_text())["seed"] == 7
    again = runner.invoke(app, ["data", "split", "--data", str(tmp_path / "all"), "--out", str(tmp_path / "split")])
    assert again.exit_code == 1 and "not an empty folder" in again.output


def test_data_split_copies_where_links_fail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A filesystem without hard or symbolic links (some network shares, FAT) gets copies."""
    write_synthetic_dataset(tmp_path / "all", SynthConfig(n=2, size=32, seed=0))

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("operation not permitted")

    monkeypatch.setattr("os.link", refuse)
    monkeypatch.setattr(Path, "symlink_to", refuse)
    result = write_split(tmp_path / "all", tmp_path / "split", 0.5, 0)
    assert result.methods == {"copy": 4} and (result.n_train, result.n_val) == (1, 1)
    copied = next((tmp_path / "split" / "val").iterdir())
    assert not copied.is_symlink() and copied.read_bytes() == (tmp_path / "all" / copied.name).read_bytes()
    with pytest.raises(DatasetError, match="between 0 and 1"):
        write_split(tmp_path / "all", tmp_path / "other", 0.0, 0)


@pytest.mark.slow
def test_accumulation_under_two_process_ddp(two_scenes: tuple[Path, Path], tmp_path: Path) -> None:
    """Two gloo processes, batch 1, two batches a step: effective batch 4, gradients synced once per step."""
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "nltool.training", "--data", str(two_scenes[0]), "--val", str(two_scenes[1]), "--out", str(out),
           *TINY, "--batch-size", "1", "--accumulate", "2", "--samples-per-epoch", "8", "--max-steps", "3"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "effective batch size 4 = 1 × 2 accumulated × 2 process(es)" in result.stderr
    assert [row["global_step"] for row in _rows(out)] == [2, 3], "2 steps an epoch (8 crops / 4), then the budget"
    assert result.stdout.count("trained 3 steps") == 1
