"""The README's two set-up commands: CI runs the test one verbatim, and the demo one works."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from conftest import REPO


def _readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)
    return [block.strip() for block in blocks[:2]]


def test_readme_starts_with_the_two_setup_commands() -> None:
    main_job, tests = _readme_commands()
    assert main_job == "pip install -e . && nltool demo"
    assert tests.startswith("pip install -e ") and tests.endswith("python -m pytest")


def test_ci_runs_exactly_the_readme_test_command() -> None:
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert _readme_commands()[1] in ci


def test_demo_runs_to_the_end_and_writes_its_report(tmp_path: Path) -> None:
    """The README's main job, minus the install: `nltool demo` from the installed script."""
    result = subprocess.run(["nltool", "demo", "--out", str(tmp_path / "demo")], capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert f"report: {tmp_path / 'demo' / 'report.md'}" in result.stdout
    report = json.loads((tmp_path / "demo" / "report.json").read_text())
    assert [row["arch"] for row in report["rows"]] == ["linknet", "nl3-linknet", "nl4-linknet", "nl34-linknet",
                                                      "dlinknet"]
    assert all(row["matches_paper"] for row in report["rows"])
    assert report["roundtrip_identical"] is True
    assert "| nl34-linknet | 21.822M | 21.822M | yes |" in (tmp_path / "demo" / "report.md").read_text()
    assert (tmp_path / "demo" / "nl34-linknet-untrained.pt").is_file()


def _readme_block(heading: str) -> list[str]:
    """The commands of the first bash block under ``heading``."""
    text = (REPO / "README.md").read_text()
    section = text[text.index(heading):]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.S)
    assert block, f"no bash block under {heading}"
    return [line for line in block.group(1).splitlines() if line.strip()]


@pytest.mark.slow
def test_readme_synthetic_walkthrough_runs_as_written(tmp_path: Path) -> None:
    """Every command of the README's "Try it on synthetic roads" block, run in an empty folder."""
    commands = _readme_block("## Try it on synthetic roads")
    assert [c.split()[1] for c in commands] == ["data", "data", "train", "evaluate", "predict"]
    for command in commands:
        result = subprocess.run(command, shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, f"{command}\n{result.stderr[-2000:]}"
    report = json.loads((tmp_path / "runs" / "nl34" / "eval.json").read_text())
    assert report["n_images"] == 4 and report["pipeline"]["tta"] == "d4"
    assert (tmp_path / "masks" / "synth_000000_mask.png").is_file()
