"""Serving end to end: `nltool package`, a real TorchServe on 127.0.0.1, the REST and gRPC clients.

The server is started once for the module (free ports, a temporary model store and working
folder, TorchServe's pid file kept in that folder) and stopped in a finaliser.
"""

from __future__ import annotations

import json
import re
import shutil
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from conftest import sharp_linknet
from PIL import Image
from typer.testing import CliRunner

from nltool.app.cli import app
from nltool.imagery import encode_png
from nltool.models import save_checkpoint

pytest.importorskip("ts", reason="TorchServe (the [serve] extra) is not installed")
if shutil.which("java") is None:
    pytest.skip("TorchServe needs Java (a JDK 17) on the PATH", allow_module_level=True)
from nltool.export.onnx_export import export_onnx
from nltool.serving.client import BaseClient, ClientError, GrpcClient, RestClient
from nltool.serving.server import LocalTorchServe, free_ports

runner = CliRunner()
MAX_PIXELS = 2_000_000


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("serve")
    model = sharp_linknet()
    checkpoint = save_checkpoint(folder / "model.pt", model)
    onnx_path = export_onnx(model, folder / "model.onnx")
    ports = free_ports()
    store = folder / "store"
    port_args = ["--inference-port", str(ports.inference), "--management-port", str(ports.management),
                 "--metrics-port", str(ports.metrics), "--grpc-port", str(ports.grpc_inference),
                 "--grpc-management-port", str(ports.grpc_management)]
    for name, artifact in (("onnxroads", onnx_path), ("ptroads", checkpoint)):
        result = runner.invoke(app, ["package", "--model", str(artifact), "--out", str(store), "--name", name,
                                     "--max-pixels", str(MAX_PIXELS), *port_args])
        assert result.exit_code == 0, result.output
        assert "torchserve --start" in result.output
    with LocalTorchServe(store, ["onnxroads", "ptroads"], folder, ports) as server:
        yield server, folder


def test_config_is_loopback_only_with_token_auth_on(served) -> None:
    _, folder = served
    config = (folder / "store" / "config.properties").read_text()
    addresses = [line for line in config.splitlines() if "address" in line]
    assert addresses and all("127.0.0.1" in line for line in addresses)
    assert "disable_token_authorization=false" in config and "enable_model_api=false" in config


@pytest.mark.parametrize("model_name,artifact", [("onnxroads", "model.onnx"), ("ptroads", "model.pt")])
def test_rest_and_grpc_masks_are_byte_identical_to_predict(served, model_name: str, artifact: str) -> None:
    server, folder = served
    rgb = (np.random.default_rng(5).random((1100, 1500, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(folder / f"scene_{model_name}.png")
    predicted = runner.invoke(app, ["predict", str(folder / f"scene_{model_name}.png"), "--model",
                                    str(folder / artifact), "--out", str(folder / f"pred_{model_name}"), "--device",
                                    "cpu"])
    assert predicted.exit_code == 0, predicted.output
    expected = (folder / f"pred_{model_name}" / f"scene_{model_name}_mask.png").read_bytes()
    for transport in (["--url", server.url], ["--grpc", server.grpc_target]):
        out = folder / f"served_{model_name}_{transport[0][2:]}.png"
        result = runner.invoke(app, ["client", str(folder / f"scene_{model_name}.png"), "--out", str(out), *transport,
                                     "--model-name", model_name, "--token-file", str(folder / "key_file.json")])
        assert result.exit_code == 0, result.output
        assert out.read_bytes() == expected, transport


def test_grpc_ping_is_healthy(served) -> None:
    server, _ = served
    assert GrpcClient(server.grpc_target, "onnxroads", server.token()).ping() == "Healthy"


@pytest.mark.parametrize("transport", ["rest", "grpc"])
def test_summary_reports_size_road_fraction_and_stage_times(served, transport: str) -> None:
    server, folder = served
    rgb = (np.random.default_rng(8).random((300, 420, 3)) * 255).astype(np.uint8)
    client = _client(server, transport, "onnxroads")
    mask_bytes, summary = client.predict_with_summary(encode_png(rgb))
    assert mask_bytes == client.predict(encode_png(rgb))
    mask = np.asarray(Image.open(__import__("io").BytesIO(mask_bytes)))
    assert (summary["width"], summary["height"], summary["format"], summary["tiles"]) == (420, 300, "png", 1)
    assert summary["road_fraction"] == pytest.approx(float((mask == 255).mean()))
    stages = summary["seconds"]
    assert set(stages) == {"decode", "tiling", "backend", "encode", "handler"}
    assert 0 < stages["backend"] <= stages["handler"]
    assert stages["decode"] + stages["tiling"] + stages["backend"] + stages["encode"] == pytest.approx(
        stages["handler"])
    out, summary_file = folder / f"summary_{transport}.png", folder / f"summary_{transport}.json"
    Image.fromarray(rgb).save(folder / "summary_in.png")
    address = ["--url", server.url] if transport == "rest" else ["--grpc", server.grpc_target]
    result = runner.invoke(app, ["client", str(folder / "summary_in.png"), "--out", str(out), "--summary",
                                 str(summary_file), *address, "--model-name", "onnxroads", "--token-file",
                                 str(folder / "key_file.json"), "--force"])
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == mask_bytes and json.loads(summary_file.read_text())["width"] == 420


def test_custom_metrics_reach_the_metrics_api(served) -> None:
    import requests

    server, _ = served
    RestClient(server.url, "onnxroads", token=server.token()).predict(encode_png(np.zeros((64, 64, 3), np.uint8)))
    text = requests.get(f"http://127.0.0.1:{server.ports.metrics}/metrics", timeout=30).text
    lines = [line for line in text.splitlines() if line.startswith("Nltool") and 'ModelName="onnxroads"' in line]
    names = {line.split("{")[0] for line in lines}
    assert {"NltoolTilesProcessed", "NltoolBackendImages", "NltoolDecodeLatency", "NltoolTilingLatency",
            "NltoolBackendLatency", "NltoolEncodeLatency", "NltoolHandlerLatency"} <= names
    tiles = next(line for line in lines if line.startswith("NltoolTilesProcessed"))
    assert float(tiles.rsplit(" ", 1)[1]) >= 1


def _client(server: LocalTorchServe, transport: str, model: str, token: str | None = "server") -> BaseClient:
    token = server.token() if token == "server" else token
    if transport == "rest":
        return RestClient(server.url, model, token=token)
    return GrpcClient(server.grpc_target, model, token=token)


@pytest.mark.parametrize("transport", ["rest", "grpc"])
def test_missing_token_is_refused_with_a_clear_message(served, transport: str) -> None:
    server, _ = served
    with pytest.raises(ClientError, match="TorchServe refused the token: pass --token-file"):
        _client(server, transport, "onnxroads", token=None).predict(encode_png(np.zeros((64, 64, 3), np.uint8)))


@pytest.mark.parametrize("transport", ["rest", "grpc"])
def test_unknown_model(served, transport: str) -> None:
    server, _ = served
    with pytest.raises(ClientError, match="no model 'nope'"):
        _client(server, transport, "nope").predict(encode_png(np.zeros((64, 64, 3), np.uint8)))


def _truncated_png() -> bytes:
    data = encode_png((np.random.default_rng(1).random((300, 300, 3)) * 255).astype(np.uint8))
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
    named = {None: _truncated_png(), "huge": encode_png(np.zeros((1500, 1500, 3), np.uint8)),
             "small": encode_png(np.zeros((64, 64, 3), np.uint8))}
    payload = body if isinstance(body, bytes) else named.get(body, body)
    headers = {"Authorization": f"Bearer {server.token()}", "Content-Type": "application/octet-stream", **options}
    response = requests.post(f"{server.url}/predictions/onnxroads", data=payload, headers=headers, timeout=120)
    assert response.status_code == status, response.text
    error = response.json()
    assert error["code"] == status and message in error["message"]
    client = RestClient(server.url, "onnxroads", token=server.token())
    good = client.predict(encode_png(np.zeros((96, 96, 3), np.uint8)))
    assert Image.open(__import__("io").BytesIO(good)).size == (96, 96)


@pytest.mark.parametrize("body,threshold,message", [
    (b"", None, "TorchServe answered 400: empty request body"),
    (b"just some text", None, "is not a PNG, JPEG or TIFF/GeoTIFF image"),
    ("huge", None, "too large for this server: request body is 1500×1500 = 2.2 megapixels"),
    ("small", 2.0, "threshold must be in [0, 1), got 2.0"),
])
def test_bad_grpc_requests_raise_clear_errors_and_the_worker_keeps_serving(served, body, threshold,
                                                                            message) -> None:
    server, _ = served
    payload = {"huge": encode_png(np.zeros((1500, 1500, 3), np.uint8)),
               "small": encode_png(np.zeros((64, 64, 3), np.uint8))}.get(body, body)
    client = _client(server, "grpc", "onnxroads")
    with pytest.raises(ClientError, match=re.escape(message)):
        client.predict(payload, threshold=threshold)
    good = client.predict(encode_png(np.zeros((96, 96, 3), np.uint8)))
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
    server, _folder = served
    rgb = (np.random.default_rng(9).random((1024, 1024, 3)) * 255).astype(np.uint8)
    image = encode_png(rgb)
    client = RestClient(server.url, "onnxroads", token=server.token(), timeout=600)
    expected = client.predict(image)

    def five(_: int) -> list[bytes]:
        return [client.predict(image) for _ in range(5)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = [answer for batch in pool.map(five, range(8)) for answer in batch]
    assert len(answers) == 40 and all(answer == expected for answer in answers)


def test_geojson_answer_for_a_geotiff_request_is_rfc7946_wgs84_and_matches_predict(served) -> None:
    pytest.importorskip("sknw", reason="the [vector] extra is not installed")
    rasterio = pytest.importorskip("rasterio", reason="rasterio (the [geo] extra) is not installed")
    from pyproj import Transformer
    from rasterio.crs import CRS
    from rasterio.transform import from_origin

    server, folder = served
    data = (np.random.default_rng(4).random((3, 256, 320)) * 255).astype(np.uint8)
    profile = {"driver": "GTiff", "height": 256, "width": 320, "count": 3, "dtype": "uint8",
               "crs": CRS.from_epsg(32630), "transform": from_origin(400000, 4000000, 0.5, 0.5)}
    with rasterio.open(folder / "geo_scene.tif", "w", **profile) as dst:
        dst.write(data)
    out = folder / "served_roads.geojson"
    result = runner.invoke(app, ["client", str(folder / "geo_scene.tif"), "--out", str(out), "--url", server.url,
                                 "--model-name", "onnxroads", "--format", "geojson", "--token-file",
                                 str(folder / "key_file.json")])
    assert result.exit_code == 0, result.output
    answer = json.loads(out.read_text())
    assert answer["type"] == "FeatureCollection" and "crs" not in answer
    assert answer["nltool"]["coordinates"] == "map"
    to_wgs84 = Transformer.from_crs("EPSG:32630", "EPSG:4326", always_xy=True)
    corners = np.array([to_wgs84.transform(x, y) for x in (400000, 400160) for y in (3999872, 4000000)])
    (west, south), (east, north) = corners.min(axis=0), corners.max(axis=0)
    lines = [f for f in answer["features"] if f["geometry"]["type"] == "LineString"]
    assert lines, "the served model's mask should hold some road"
    for feature in answer["features"]:
        coordinates = np.array(feature["geometry"]["coordinates"], dtype=float).reshape(-1, 2)
        assert ((coordinates[:, 0] >= west - 1e-6) & (coordinates[:, 0] <= east + 1e-6)).all()
        assert ((coordinates[:, 1] >= south - 1e-6) & (coordinates[:, 1] <= north + 1e-6)).all()
    assert all(f["properties"]["length_m"] > 0 for f in lines)
    grpc_answer = GrpcClient(server.grpc_target, "onnxroads", server.token()).predict(
        (folder / "geo_scene.tif").read_bytes(), fmt="geojson")
    assert json.loads(grpc_answer) == answer
    predicted = runner.invoke(app, ["predict", str(folder / "geo_scene.tif"), "--model", str(folder / "model.onnx"),
                                    "--out", str(folder / "pred_geo"), "--vectors", "geojson", "--device", "cpu"])
    assert predicted.exit_code == 0, predicted.output
    assert json.loads((folder / "pred_geo" / "geo_scene_roads.geojson").read_text()) == answer
    del rasterio
