"""Serving end to end: `nltool package`, a real TorchServe on 127.0.0.1, the REST client.

The server is started once for the module (free ports, a temporary model store and working
folder, TorchServe's pid file kept in that folder) and stopped in a finaliser.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from nltool.cli import app
from nltool.models import build_model, save_checkpoint

pytest.importorskip("ts", reason="TorchServe (the [serve] extra) is not installed")
if shutil.which("java") is None:
    pytest.skip("TorchServe needs Java (a JDK 17) on the PATH", allow_module_level=True)
from export.onnx_export import export_onnx  # noqa: E402
from serving.client import ClientError, RestClient, read_token  # noqa: E402

runner = CliRunner()
MAX_PIXELS = 2_000_000


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


class Server:
    """A TorchServe started from ``folder`` with the models of ``store``."""

    def __init__(self, folder: Path, store: Path, ports: list[int], models: list[str]) -> None:
        self.folder, self.url = folder, f"http://127.0.0.1:{ports[0]}"
        self.env = {**os.environ, "TMPDIR": str(folder)}  # TorchServe keeps its pid file there
        with (folder / "torchserve.out").open("w") as log:  # not a pipe: the JVM keeps its stdout open
            subprocess.run(["torchserve", "--start", "--ncs", "--model-store", str(store), "--ts-config",
                            str(store / "config.properties"), "--models", *[f"{m}={m}.mar" for m in models]],
                           cwd=folder, env=self.env, check=True, stdout=log, stderr=subprocess.STDOUT, timeout=120)

    def token(self) -> str:
        return read_token(self.folder / "key_file.json")

    def wait_ready(self, models: list[str], seconds: float = 180) -> None:
        import requests

        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                if (self.folder / "key_file.json").exists():
                    headers = {"Authorization": f"Bearer {self.token()}"}
                    ping = requests.get(f"{self.url}/ping", headers=headers, timeout=5)
                    probe = _png(np.zeros((64, 64, 3), np.uint8))
                    ready = all(requests.post(f"{self.url}/predictions/{m}", data=probe, timeout=60,
                                              headers={**headers, "Content-Type": "application/octet-stream"}).ok
                                for m in models)
                    if ping.ok and ready:
                        return
            except requests.RequestException:
                pass
            time.sleep(2)
        log = (self.folder / "logs" / "model_log.log")
        raise RuntimeError("TorchServe did not become ready:\n" + (log.read_text()[-3000:] if log.exists() else ""))

    def stop(self) -> None:
        subprocess.run(["torchserve", "--stop"], cwd=self.folder, env=self.env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=120)


def _png(rgb: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201 - (server, folder with artifacts)
    folder = tmp_path_factory.mktemp("serve")
    torch.manual_seed(0)
    model = build_model("linknet").eval()
    with torch.no_grad():
        model.decoder.head.conv3.weight.mul_(50)
    checkpoint = save_checkpoint(folder / "model.pt", model)
    onnx_path = export_onnx(model, folder / "model.onnx")
    ports = _free_ports(5)
    store = folder / "store"
    port_args = ["--inference-port", str(ports[0]), "--management-port", str(ports[1]), "--metrics-port",
                 str(ports[2]), "--grpc-port", str(ports[3]), "--grpc-management-port", str(ports[4])]
    for name, artifact in (("onnxroads", onnx_path), ("ptroads", checkpoint)):
        result = runner.invoke(app, ["package", "--model", str(artifact), "--out", str(store), "--name", name,
                                     "--max-pixels", str(MAX_PIXELS), *port_args])
        assert result.exit_code == 0, result.output
        assert "torchserve --start" in result.output
    server = Server(folder, store, ports, ["onnxroads", "ptroads"])
    try:
        server.wait_ready(["onnxroads", "ptroads"])
        yield server, folder
    finally:
        server.stop()


def test_config_is_loopback_only_with_token_auth_on(served) -> None:
    _, folder = served
    config = (folder / "store" / "config.properties").read_text()
    addresses = [line for line in config.splitlines() if "address" in line]
    assert addresses and all("127.0.0.1" in line for line in addresses)
    assert "disable_token_authorization=false" in config and "enable_model_api=false" in config


@pytest.mark.parametrize("model_name,artifact", [("onnxroads", "model.onnx"), ("ptroads", "model.pt")])
def test_rest_mask_is_byte_identical_to_predict(served, model_name: str, artifact: str) -> None:
    server, folder = served
    rgb = (np.random.default_rng(5).random((1100, 1500, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(folder / f"scene_{model_name}.png")
    predicted = runner.invoke(app, ["predict", str(folder / f"scene_{model_name}.png"), "--model",
                                    str(folder / artifact), "--out", str(folder / f"pred_{model_name}"), "--device",
                                    "cpu"])
    assert predicted.exit_code == 0, predicted.output
    expected = (folder / f"pred_{model_name}" / f"scene_{model_name}_mask.png").read_bytes()
    out = folder / f"served_{model_name}.png"
    result = runner.invoke(app, ["client", str(folder / f"scene_{model_name}.png"), "--out", str(out), "--url",
                                 server.url, "--model-name", model_name, "--token-file",
                                 str(folder / "key_file.json")])
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == expected


def test_missing_token_is_refused_with_a_clear_message(served) -> None:
    server, _ = served
    with pytest.raises(ClientError, match="TorchServe refused the token: pass --token-file"):
        RestClient(server.url, "onnxroads", token=None).predict(_png(np.zeros((64, 64, 3), np.uint8)))


def test_unknown_model(served) -> None:
    server, _ = served
    with pytest.raises(ClientError, match="no model 'nope'"):
        RestClient(server.url, "nope", token=server.token()).predict(_png(np.zeros((64, 64, 3), np.uint8)))


def _truncated_png() -> bytes:
    data = _png((np.random.default_rng(1).random((300, 300, 3)) * 255).astype(np.uint8))
    return data[: len(data) // 2]


@pytest.mark.parametrize("body,options,status,message", [
    (b"", {}, 400, "empty request body"),
    (None, {}, 400, "truncated or corrupt"),
    (b"just some text", {}, 400, "is not a PNG, JPEG or TIFF/GeoTIFF image"),
    ("huge", {}, 413, "above the limit of 2.0 megapixels"),
    ("small", {"X-Nltool-Threshold": "2"}, 400, "threshold must be in [0, 1), got 2.0"),
    ("small", {"X-Nltool-Tta": "d8"}, 400, "tta 'd8' is not allowed"),
])
def test_bad_requests_get_json_4xx_and_the_worker_keeps_serving(served, body, options, status, message) -> None:
    import requests

    server, _ = served
    payload = {None: _truncated_png(), "huge": _png(np.zeros((1500, 1500, 3), np.uint8)),
               "small": _png(np.zeros((64, 64, 3), np.uint8))}.get(body, body) if not isinstance(body, bytes) else body
    headers = {"Authorization": f"Bearer {server.token()}", "Content-Type": "application/octet-stream", **options}
    response = requests.post(f"{server.url}/predictions/onnxroads", data=payload, headers=headers, timeout=120)
    assert response.status_code == status, response.text
    error = response.json()
    assert error["code"] == status and message in error["message"]
    good = RestClient(server.url, "onnxroads", token=server.token()).predict(_png(np.zeros((96, 96, 3), np.uint8)))
    assert Image.open(__import__("io").BytesIO(good)).size == (96, 96)


def test_geotiff_request_returns_a_georeferenced_geotiff(served) -> None:
    rasterio = pytest.importorskip("rasterio", reason="rasterio (the [geo] extra) is not installed")
    from rasterio.crs import CRS
    from rasterio.io import MemoryFile
    from rasterio.transform import from_origin

    server, _ = served
    data = (np.random.default_rng(3).random((3, 200, 260)) * 255).astype(np.uint8)
    profile = {"driver": "GTiff", "height": 200, "width": 260, "count": 3, "dtype": "uint8",
               "crs": CRS.from_epsg(32630), "transform": from_origin(400000, 4000000, 0.5, 0.5)}
    with MemoryFile() as memory:
        with memory.open(**profile) as dst:
            dst.write(data)
        tiff = memory.read()
    answer = RestClient(server.url, "onnxroads", token=server.token()).predict(tiff, fmt="tif")
    with MemoryFile(answer) as memory, memory.open() as mask:
        assert (mask.crs, mask.transform, mask.width, mask.height) == (profile["crs"], profile["transform"], 260, 200)
        assert set(np.unique(mask.read(1))) <= {0, 255}
    del rasterio


@pytest.mark.slow
def test_eight_concurrent_clients_five_requests_each(served) -> None:
    server, folder = served
    rgb = (np.random.default_rng(9).random((1024, 1024, 3)) * 255).astype(np.uint8)
    image = _png(rgb)
    client = RestClient(server.url, "onnxroads", token=server.token(), timeout=600)
    expected = client.predict(image)

    def five(_: int) -> list[bytes]:
        return [client.predict(image) for _ in range(5)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = [answer for batch in pool.map(five, range(8)) for answer in batch]
    assert len(answers) == 40 and all(answer == expected for answer in answers)
    assert json.loads(json.dumps({"ok": True}))["ok"]
