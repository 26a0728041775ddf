"""configs/paper/table{2,3}.sh, the paper's experiments: their commands use only options nltool has,
with values it accepts and the paper's recipe, and one row of each table runs end to end (SMOKE=1)."""

from __future__ import annotations

import functools
import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import typer
from conftest import REPO
from typer.testing import CliRunner

from nltool.app.cli import app

SCRIPTS = {"table2": REPO / "configs" / "paper" / "table2.sh", "table3": REPO / "configs" / "paper" / "table3.sh"}
ROWS = {  # (arch, pairwise) of every row, as in the paper's Tables II and III
    "table2": {("linknet", "embedded_gaussian"), ("dlinknet", "embedded_gaussian"),
               ("nl3-linknet", "embedded_gaussian"), ("nl4-linknet", "embedded_gaussian"),
               ("nl34-linknet", "embedded_gaussian")},
    "table3": {("linknet", "embedded_gaussian"), ("nl34-linknet", "dot_product"), ("nl34-linknet", "gaussian"),
               ("nl34-linknet", "embedded_gaussian")},
}


def _script(table: str, cwd: Path, timeout: float = 60, **env: str) -> str:
    result = subprocess.run(["bash", str(SCRIPTS[table])], check=False, cwd=cwd, capture_output=True, text=True,
                            timeout=timeout, env={**os.environ, **env})
    assert result.returncode == 0, f"{table}: {result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def _commands(table: str, tmp_path: Path, **env: str) -> list[tuple[str, list[str]]]:
    """(nltool subcommand, its arguments) of every command the script prints with DRY_RUN=1."""
    out = _script(table, tmp_path, DRY_RUN="1", RUNS=str(tmp_path / "runs"), **env)
    assert not (tmp_path / "runs").exists(), "DRY_RUN=1 must not write anything"
    commands = []
    for line in out.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        words = shlex.split(line)
        if words[:2] in (["nltool", "train"], ["nltool", "evaluate"]):
            commands.append((words[1], words[2:]))
        elif words[0] == "torchrun":
            assert words[words.index("-m") + 1] == "nltool.training", line
            commands.append(("train", words[words.index("-m") + 2:]))
        else:
            pytest.fail(f"{table} prints a command that is neither nltool train/evaluate nor torchrun: {line}")
    return commands


@functools.cache
def _help_options(command: str) -> frozenset[str]:
    """Every --option named in `nltool COMMAND --help` (the installed console script)."""
    result = subprocess.run(["nltool", command, "--help"], check=False, capture_output=True, text=True, timeout=60,
                            env={**os.environ, "COLUMNS": "200", "TERM": "dumb", "NO_COLOR": "1"})
    assert result.returncode == 0, result.stderr
    return frozenset(re.findall(r"--[a-z][a-z0-9-]*", result.stdout))


def _option(args: list[str], name: str) -> str:
    """The value of the last ``name`` in ``args`` (the one click keeps)."""
    return args[len(args) - 1 - args[::-1].index(name) + 1]


@pytest.mark.parametrize("gpus", ["1", "4"])
@pytest.mark.parametrize("table", sorted(SCRIPTS))
def test_every_row_uses_existing_options_with_accepted_values(table: str, gpus: str, tmp_path: Path) -> None:
    commands = _commands(table, tmp_path, GPUS=gpus)
    assert [name for name, _ in commands] == ["train", "evaluate"] * len(ROWS[table])
    click_app = typer.main.get_command(app)
    for name, args in commands:
        unknown = {word.split("=")[0] for word in args if word.startswith("--")} - _help_options(name)
        assert not unknown, f"{table}: nltool {name} has no {sorted(unknown)}"
        click_app.commands[name].make_context(name, list(args))  # parses and checks every value
    trains = [args for name, args in commands if name == "train"]
    assert {(_option(a, "--arch"), _option(a, "--pairwise")) for a in trains} == ROWS[table]
    assert len({_option(a, "--out") for a in trains}) == len(trains), "every row needs its own run folder"


@pytest.mark.parametrize("table", sorted(SCRIPTS))
def test_rows_follow_the_paper_recipe(table: str, tmp_path: Path) -> None:
    commands = _commands(table, tmp_path, GPUS="4")
    for name, args in commands:
        if name == "train":  # paper III-B: ImageNet ResNet34, crop 1024, batch 8 over 4 GPUs, Adam 3e-4, lr / 5
            expected = {"--encoder-weights": "imagenet", "--crop": "1024", "--batch-size": "2", "--lr": "3e-4",
                        "--lr-factor": "0.2", "--val-fraction": "0"}
        else:  # paper III-B c: 8 flips/rotations, threshold 4 of 8, no multi-scale (Tables II and III)
            expected = {"--tta": "d4", "--threshold": "0.5", "--scales": "1.0"}
        assert {key: _option(args, key) for key in expected} == expected, f"{table} {name}: {args}"


def test_rows_the_tables_share_are_trained_once(tmp_path: Path) -> None:
    """Table III's baseline and embedded-Gaussian rows are Table II's runs: evaluated again, not retrained."""
    for name in ("linknet", "nl34-linknet"):
        (tmp_path / "runs" / name).mkdir(parents=True)
        (tmp_path / "runs" / name / "last.pt").touch()
    out = _script("table3", tmp_path, DRY_RUN="1", RUNS="runs")
    assert out.count("already holds a run; not retraining") == 2
    assert [line.split()[1] for line in out.splitlines() if line.startswith("nltool")] == \
        ["evaluate", "train", "evaluate", "train", "evaluate", "evaluate"]


@pytest.mark.slow
def test_one_row_of_each_table_runs_end_to_end(tmp_path: Path) -> None:
    """SMOKE=1 (2 CPU steps, 64-pixel crops) on 6 synthetic 64×64 scenes, one row per table."""
    synth = CliRunner().invoke(app, ["data", "synth", "--out", str(tmp_path / "train"), "--n", "6", "--size", "64"])
    assert synth.exit_code == 0, synth.output
    # One thread: on tensors this small, torch's thread pool costs more than it gains (3× on 2 busy cores).
    env = {"SMOKE": "1", "DATA": "train", "RUNS": "runs", "OMP_NUM_THREADS": "1"}
    runs = tmp_path / "runs"
    for table, name in (("table2", "nl4-linknet"), ("table3", "nl34-linknet-dot_product")):
        out = _script(table, tmp_path, timeout=300, ONLY=name, **env)
        assert (runs / name / "best.pt").is_file() and (runs / name / "last.pt").is_file()
        report = json.loads((runs / name / "eval.json").read_text())
        assert report["n_images"] == 1 and report["pipeline"]["tta"] == "d4"
        assert 0 <= report["mean_iou_per_image"]["value"] <= 1
        assert re.search(rf"^{re.escape(name)} +[0-9.]+ +[0-9.]+$", out, flags=re.MULTILINE), out  # the summary row
    assert len(list((runs / "split" / "val").glob("*_sat.jpg"))) == 1  # HOLDOUT 0.1 of 6 scenes, made once
    assert len(list((runs / "split" / "train").glob("*_mask.png"))) == 5
    config = json.loads((runs / "nl34-linknet-dot_product" / "config.json").read_text())
    assert (config["arch"], config["pairwise"], config["crop"]) == ("nl34-linknet", "dot_product", 64)
