"""The nltool command line: help covers DESIGN's CLI, info prints metadata, errors are one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch
from conftest import random_state_dict
from typer.testing import CliRunner

from nltool.app.cli import app
from nltool.models import build_model, save_checkpoint

runner = CliRunner()
DESIGN_COMMANDS = ["data", "train", "evaluate", "predict", "export", "package", "client", "demo", "info"]
WORKING_COMMANDS = ["info", "demo", "predict", "train", "evaluate", "export", "package", "client"]


def _run_script(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the installed console script, as a user would."""
    return subprocess.run(["nltool", *args], capture_output=True, text=True, timeout=300)


def test_help_lists_every_command_of_the_design() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in DESIGN_COMMANDS:
        assert f" {command} " in result.output, command
    synth = runner.invoke(app, ["data", "--help"])
    assert "synth" in synth.output
    assert runner.invoke(app, ["data", "synth", "--help"]).exit_code == 0


def test_client_errors_without_a_server(tmp_path: Path) -> None:
    """A missing image or token file, and a server that is not there, each give one clear line."""
    import json
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "a.png").write_bytes(b"not read")
    (tmp_path / "key_file.json").write_text(json.dumps({"inference": {"key": "k"}}))
    common = ["--out", str(tmp_path / "m.png"), "--retries", "0"]
    cases = [
        (["client", str(tmp_path / "missing.png"), *common], "image not found"),
        (["client", str(tmp_path / "a.png"), *common, "--token-file", str(tmp_path / "nope.json")],
         "token file " + str(tmp_path / "nope.json") + " not found"),
        (["client", str(tmp_path / "a.png"), *common, "--token-file", str(tmp_path / "key_file.json"), "--url",
          f"http://127.0.0.1:{port}"], f"cannot reach TorchServe at http://127.0.0.1:{port}: is it running?"),
        (["client", str(tmp_path / "a.png"), *common, "--token-file", str(tmp_path / "key_file.json"), "--grpc",
          f"127.0.0.1:{port}", "--timeout", "5"], f"cannot reach TorchServe's gRPC API at 127.0.0.1:{port}"),
    ]
    for args, message in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 1 and message in result.output, (args, result.output)
    assert not (tmp_path / "m.png").exists()


def test_version() -> None:
    from nltool import __version__

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"nltool {__version__}"


def test_info_prints_metadata_and_parameter_count(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "best.pt", build_model("nl4-linknet"), epoch=3, best_metric=0.5,
                           metric_name="val_iou", training_config={"crop": 256})
    result = runner.invoke(app, ["info", str(path)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "nl4-linknet" in out and "embedded_gaussian" in out
    assert "21,789,121 (21.789M; paper Table II: 21.789M)" in out
    assert "rgb / 255 * 3.2 - 1.6 (paper)" in out
    assert "0.5 (val_iou)" in out and '{"crop": 256}' in out


def test_info_json_for_an_authors_th(authors_keys, tmp_path: Path) -> None:
    torch.save(random_state_dict(authors_keys["dlinknet"]), tmp_path / "dlink.th")
    result = runner.invoke(app, ["info", str(tmp_path / "dlink.th"), "--arch", "dlinknet", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["format"] == "authors" and summary["arch"] == "dlinknet"
    assert summary["parameters"] == 31_096_129 and summary["pairwise"] is None


def test_info_errors_are_one_line_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"\x00" * 100)
    result = _run_script("info", str(bad))
    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot read checkpoint") and "broken.pt" in result.stderr
    assert "Traceback" not in result.stderr


def test_info_rejects_an_unknown_arch_with_the_choices(tmp_path: Path) -> None:
    result = runner.invoke(app, ["info", str(tmp_path / "x.th"), "--arch", "unet"])
    assert result.exit_code == 2
    assert "nl34-linknet" in result.output


def test_every_command_help_describes_each_option() -> None:
    """Every option of every working command has a help text in --help."""
    from typer.main import get_command

    group = get_command(app)
    for name in WORKING_COMMANDS:
        command = group.commands[name]  # type: ignore[attr-defined]
        for param in command.params:
            if param.param_type_name == "option":
                assert param.help, f"nltool {name} {param.opts[0]} has no help text"
        assert runner.invoke(app, [name, "--help"]).exit_code == 0
    info_help = runner.invoke(app, ["info", "--help"]).output
    for option in ("--arch", "--pairwise", "--json"):
        assert option in info_help


def test_module_entry_point_matches_console_script() -> None:
    result = subprocess.run([sys.executable, "-c", "from nltool.app.cli import main; main()", "--version"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.startswith("nltool ")
