"""`nltool demo --quick` end to end (TorchServe included), and the server cleanup on interruption."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("ts", reason="TorchServe (the [serve] extra) is not installed")
pytest.importorskip("onnxruntime", reason="onnxruntime (the [cpu] extra) is not installed")
if shutil.which("java") is None:
    pytest.skip("TorchServe needs Java (a JDK 17) on the PATH", allow_module_level=True)

from nltool.app.demo import QUICK, DemoError, prepare_out

pytestmark = pytest.mark.slow


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _config_port(store: Path, key: str) -> int:
    line = next(line for line in (store / "config.properties").read_text().splitlines() if line.startswith(key))
    return int(line.rsplit(":", 1)[1] if "address" in key else line.split("=")[1])


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """As a new user runs it: from a folder, with the default relative ``--out`` (nltool-demo)."""
    folder = tmp_path_factory.mktemp("demo")
    done = subprocess.run(["nltool", "demo", "--quick"], cwd=folder, capture_output=True, text=True, timeout=900,
                          check=False)
    return folder / "nltool-demo", done


def test_quick_demo_goes_through_every_stage_and_reports(quick_demo) -> None:
    out, done = quick_demo
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "report: nltool-demo/report.md"
    for i in range(1, 8):
        assert f"[{i}/7]" in done.stdout
    report = json.loads((out / "report.json").read_text())
    assert [s["stage"] for s in report["stages"]] == [
        "synthesize road scenes", "train nl34-linknet", "evaluate with d4 TTA", "export ONNX + INT8, check parity",
        "package a TorchServe archive", "serve with TorchServe and request over REST"]
    assert report["train"]["steps"] == QUICK.steps and (out / "run" / "best.pt").is_file()
    assert 0.0 <= report["evaluate"]["mean_iou_per_image"] <= 1.0
    assert report["export"]["fp32"]["passed"] and report["export"]["fp32"]["max_abs"] <= 1e-4
    assert "int8" in report["export"] and (out / "artifacts" / "model.int8.onnx").is_file()
    assert (out / "model_store" / "nllinknet.mar").is_file()
    served = report["serve"]
    assert served["identical_to_local_pipeline"] is True
    assert served["server_summary"]["width"] == QUICK.size and served["server_summary"]["tta"] == "d4"
    access = (out / "serve" / "logs" / "access_log.log").read_text()  # TorchServe really answered there
    assert '"POST /predictions/nllinknet HTTP/1.1" 200' in access
    assert not _port_open(_config_port(out / "model_store", "inference_address"))  # and was stopped
    markdown = (out / "report.md").read_text()
    assert "| serve with TorchServe and request over REST |" in markdown and "byte-identical" in markdown


def test_quick_demo_draws_a_figure_per_held_out_scene(quick_demo) -> None:
    out, done = quick_demo
    assert done.returncode == 0
    figures = sorted((out / "figures").glob("*.png"))
    assert [f.stem for f in figures] == [f"synth_{i:06d}" for i in range(QUICK.val_scenes)]
    figure = np.asarray(Image.open(figures[0]).convert("RGB"))
    size = QUICK.size
    assert figure.shape[1] == 3 * size + 8 and figure.shape[0] > size
    truth = np.asarray(Image.open(out / "data" / "heldout" / "synth_000000_mask.png"))
    truth_panel = figure[-size:, size + 4: 2 * size + 4, 0]
    assert ((truth_panel > 127) == (truth > 127)).mean() > 0.99  # the middle panel is the ground truth


def test_demo_refuses_a_folder_it_did_not_write(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(DemoError, match="not empty; pass --force"):
        prepare_out(tmp_path, force=False)
    with pytest.raises(DemoError, match="was not written by nltool demo; refusing to delete it"):
        prepare_out(tmp_path, force=True)
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_sigterm_while_serving_stops_torchserve(quick_demo, tmp_path: Path) -> None:
    """What the demo does around its server: SIGTERM in the block still runs ``torchserve --stop``."""
    out, done = quick_demo
    assert done.returncode == 0
    store = out / "model_store"
    script = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from nltool.app.demo import sigterm_as_interrupt
        from nltool.serving.server import LocalTorchServe, free_ports
        from nltool.serving.package import Ports
        ports = Ports({_config_port(store, "inference_address")}, {_config_port(store, "management_address")},
                      {_config_port(store, "metrics_address")}, {_config_port(store, "grpc_inference_port")},
                      {_config_port(store, "grpc_management_port")}, {_config_port(store, "initial_worker_port")})
        server = LocalTorchServe(Path({str(store)!r}), ["nllinknet"], Path({str(tmp_path)!r}), ports)
        with sigterm_as_interrupt(), server:
            print("ready", flush=True)
            time.sleep(600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        port = _config_port(store, "inference_address")
        assert _port_open(port)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=180)
        assert not _port_open(port)
    finally:
        if proc.poll() is None:
            proc.kill()
            subprocess.run(["torchserve", "--stop"], cwd=tmp_path, env={**os.environ, "TMPDIR": str(tmp_path)},
                           check=False)
