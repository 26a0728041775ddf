"""The README's two set-up commands: CI runs the test one verbatim, and the demo one works."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from conftest import REPO
from PIL import Image

if TYPE_CHECKING:
    from nltool.serving.package import Ports


def _readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)
    return [block.strip() for block in blocks[:2]]


def test_readme_starts_with_the_two_setup_commands() -> None:
    main_job, tests = _readme_commands()
    assert main_job == 'pip install -e ".[demo]" && nltool demo'
    assert tests.startswith("pip install -e ") and tests.endswith("python -m pytest")


def test_ci_runs_exactly_the_readme_test_command() -> None:
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert _readme_commands()[1] in ci


def test_ci_runs_the_readme_main_job_in_a_fresh_venv_with_the_default_out() -> None:
    """The main job's command (with --quick) runs in a venv of its own, from the clone's root."""
    ci = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    main_job = ci.index(_readme_commands()[0] + " --quick")
    assert any(line.startswith("python -m venv") for line in ci[:main_job])
    assert any(line.startswith(". ") and "venv/bin/activate" in line for line in ci[:main_job])
    assert "--out" not in ci[main_job]


def _readme_block(heading: str) -> list[str]:
    """The commands of the first bash block under ``heading``."""
    text = (REPO / "README.md").read_text()
    section = text[text.index(heading):]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.S)
    assert block, f"no bash block under {heading}"
    return [line for line in block.group(1).splitlines() if line.strip()]


def _run(command: str, cwd: Path, env: dict[str, str]) -> None:
    # To a file, not a pipe: `torchserve --start` leaves a JVM holding its stdout, and reading a
    # pipe would wait for that JVM to exit.
    log = cwd / f".command-{abs(hash(command))}.log"
    with log.open("w") as out:
        result = subprocess.run(command, shell=True, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, text=True,
                                timeout=900, env=env, check=False)
    assert result.returncode == 0, f"{command}\n{log.read_text()[-3000:]}"


def _on_free_ports(command: str, ports: Ports) -> str:
    """The README's serve commands use TorchServe's default ports; the test gives them free ones."""
    if command.startswith("nltool package"):
        command += (f" --inference-port {ports.inference} --management-port {ports.management} --metrics-port "
                    f"{ports.metrics} --grpc-port {ports.grpc_inference} --grpc-management-port "
                    f"{ports.grpc_management} --worker-port {ports.worker}")
    return command.replace("127.0.0.1:8080", f"127.0.0.1:{ports.inference}").replace(
        "127.0.0.1:7070", f"127.0.0.1:{ports.grpc_inference}")


@pytest.mark.slow
def test_readme_tour_runs_as_written(tmp_path: Path) -> None:
    """Every command of the README's bash blocks in the tour, in order, in an empty folder: the
    synthetic walkthrough, the CPU export, then package, TorchServe, the REST, gRPC and curl clients."""
    pytest.importorskip("ts", reason="TorchServe (the [serve] extra) is not installed")
    from nltool.serving.server import free_ports

    env = {**os.environ, "TMPDIR": str(tmp_path)}  # TorchServe keeps its pid file there
    walkthrough = _readme_block("### 1. Synthetic roads, end to end by hand")
    assert [c.split()[1] for c in walkthrough] == ["data", "data", "train", "evaluate", "predict"]
    for command in walkthrough:
        _run(command, tmp_path, env)
    report = json.loads((tmp_path / "runs" / "nl34" / "eval.json").read_text())
    assert report["n_images"] == 4 and report["pipeline"]["tta"] == "d4"
    assert (tmp_path / "masks" / "synth_000000_mask.png").is_file()

    for command in _readme_block("### 4. Export"):
        _run(command, tmp_path, env)
    assert json.loads((tmp_path / "artifacts" / "parity.json").read_text())["passed"] is True

    serve = _readme_block("### 5. Package and serve with TorchServe")
    assert [c.split()[:2] for c in serve] == [["nltool", "package"], ["torchserve", "--start"],
                                              ["nltool", "client"], ["nltool", "client"], ["curl", "-sf"],
                                              ["torchserve", "--stop"]]
    ports = free_ports()
    try:
        for command in serve:
            _run(_on_free_ports(command, ports), tmp_path, env)
    finally:
        subprocess.run(["torchserve", "--stop"], cwd=tmp_path, env=env, capture_output=True, check=False)
    rest, grpc, curl = (tmp_path / name for name in ("mask_rest.png", "mask_grpc.png", "mask_curl.png"))
    assert rest.read_bytes() == grpc.read_bytes() == curl.read_bytes()
    assert Image.open(rest).size == (256, 256)
    assert json.loads((tmp_path / "summary.json").read_text())["width"] == 256


def _help(command: list[str]) -> str:
    from typer.testing import CliRunner

    from nltool.app.cli import app

    done = CliRunner().invoke(app, [*command[1:], "--help"], terminal_width=200)
    assert done.exit_code == 0, done.output
    return done.output


def test_every_readme_nltool_command_uses_options_that_exist() -> None:
    """Commands the tests cannot run here (DeepGlobe, TensorRT) are still checked against --help."""
    text = (REPO / "README.md").read_text()
    lines = [line.strip() for block in re.findall(r"^```[a-z]*\n(.*?)^```", text, flags=re.S | re.M)
             for line in block.splitlines() if line.strip().startswith("nltool ")]
    assert len(lines) >= 12
    helps: dict[str, str] = {}
    for line in lines:
        words = shlex.split(line.split(" && ")[0])
        command = words[:3] if words[1] == "data" else words[:2]
        helps.setdefault(" ".join(command), _help(command))
        for option in (w.split("=")[0] for w in words if w.startswith("--")):
            assert option in helps[" ".join(command)], f"{line}: {option} is not an option of {' '.join(command)}"
