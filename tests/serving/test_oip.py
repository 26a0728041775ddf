"""`nltool serve` end to end: KServe's ModelServer on free loopback ports with a bearer token, asked
over the Open Inference Protocol (REST and gRPC, through tritonclient) and KServe's v1 :predict.

One server is started for the module (an ONNX model, a small pixel limit) and stopped at the end.
"""

from __future__ import annotations

import base64
import io
import json
import struct

import numpy as np
import pytest
from conftest import sharp_linknet
from PIL import Image
from typer.testing import CliRunner

from nltool.app.cli import app
from nltool.models import save_checkpoint
from nltool.optional import available

# Not imported here: kserve's and tritonclient's gRPC modules both define the protobuf package
# 'inference' and cannot be loaded into one process; the server runs in its own.
if not available("kserve"):
    pytest.skip("KServe's ModelServer (the [kserve] extra) is not installed", allow_module_level=True)
pytest.importorskip("tritonclient.grpc", reason="tritonclient (the [oip-client] extra) is not installed")
import requests
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from tritonclient.utils import InferenceServerException

from nltool.export.onnx_export import export_onnx
from nltool.serving.client import KServeClient
from nltool.serving.oip_client import OipClient
from nltool.serving.server import LocalOipServer

pytestmark = pytest.mark.slow
runner = CliRunner()
TOKEN = "test-token-22"
MAX_PIXELS = 1_000_000
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("oip")
    model = sharp_linknet()
    save_checkpoint(folder / "model.pt", model)
    onnx_path = export_onnx(model, folder / "model.onnx")
    rgb = (np.random.default_rng(22).random((300, 420, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(folder / "scene.png")
    predicted = {}
    for fmt in ("png", "prob"):
        result = runner.invoke(app, ["predict", str(folder / "scene.png"), "--model", str(onnx_path), "--out",
                                     str(folder / f"pred_{fmt}"), "--format", fmt, "--device", "cpu"])
        assert result.exit_code == 0, result.output
        predicted[fmt] = next((folder / f"pred_{fmt}").glob("*.png")).read_bytes()
    server = LocalOipServer(onnx_path, folder / "serve.log", token=TOKEN,
                            args=["--max-pixels", str(MAX_PIXELS), "--device", "cpu"])
    with server:
        yield server, folder, predicted


def _auth_grpc() -> dict[str, str]:
    return {"authorization": f"Bearer {TOKEN}"}


def test_cli_client_masks_are_byte_identical_to_predict_over_rest_grpc_and_v1(served) -> None:
    server, folder, predicted = served
    for transport in (["--oip", server.url], ["--oip-grpc", server.grpc_target]):
        out = folder / f"mask_{transport[0][2:]}.png"
        result = runner.invoke(app, ["client", str(folder / "scene.png"), "--out", str(out), *transport,
                                     "--bearer-token-file", str(server.log.with_suffix(".token")), "--force"])
        assert result.exit_code == 0, result.output
        assert out.read_bytes() == predicted["png"], transport
    image = (folder / "scene.png").read_bytes()
    assert KServeClient(server.url, token=TOKEN).predict(image) == predicted["png"]
    assert OipClient(server.grpc_target, token=TOKEN, grpc=True).predict(image, fmt="prob") == predicted["prob"]
    mask, summary = OipClient(server.url, token=TOKEN).predict_with_summary(image)
    assert mask == predicted["png"] and (summary["width"], summary["height"], summary["tiles"]) == (420, 300, 1)
    decoded = np.asarray(Image.open(io.BytesIO(mask)))
    assert summary["road_fraction"] == pytest.approx((decoded == 255).mean())


def test_array_input_answers_uint8_mask_and_fp32_probability(served) -> None:
    server, folder, predicted = served
    rgb = np.asarray(Image.open(folder / "scene.png"))[None]
    client = triton_http.InferenceServerClient(server.url.removeprefix("http://"))
    tensor = triton_http.InferInput("image", list(rgb.shape), "UINT8")
    tensor.set_data_from_numpy(rgb)
    outputs = [triton_http.InferRequestedOutput("mask"), triton_http.InferRequestedOutput("probability")]
    result = client.infer("nllinknet", [tensor], outputs=outputs, headers=dict(AUTH))  # it adds to the dict
    mask, prob = result.as_numpy("mask"), result.as_numpy("probability")
    assert mask.dtype == np.uint8 and mask.shape == (1, 300, 420)
    assert prob.dtype == np.float32 and prob.shape == (1, 300, 420)
    np.testing.assert_array_equal(mask[0], np.asarray(Image.open(io.BytesIO(predicted["png"]))))
    assert np.array_equal(mask[0] == 255, prob[0] > 0.5)


def test_health_and_metadata_follow_the_protocol(served) -> None:
    server, _, _ = served
    assert requests.get(f"{server.url}/v2/health/live", timeout=10).json() == {"live": True}
    assert requests.get(f"{server.url}/v2/health/ready", timeout=10).json() == {"ready": True}
    metadata = requests.get(f"{server.url}/v2/models/nllinknet", headers=AUTH, timeout=10).json()
    assert metadata["name"] == "nllinknet"
    assert {"name": "image", "datatype": "BYTES", "shape": [-1]} in metadata["inputs"]
    assert {"name": "image", "datatype": "UINT8", "shape": [-1, -1, -1, 3]} in metadata["inputs"]
    assert {o["name"] for o in metadata["outputs"]} == {"mask", "probability", "geojson", "summary"}
    grpc = triton_grpc.InferenceServerClient(server.grpc_target)
    assert grpc.is_server_live() and grpc.is_server_ready()
    assert grpc.is_model_ready("nllinknet", headers=_auth_grpc())
    assert grpc.get_model_metadata("nllinknet", headers=_auth_grpc(), as_json=True)["inputs"][0]["name"] == "image"


def _binary_infer(url: str, header: dict, raw: bytes, length: int | None = None, **headers: str) -> requests.Response:
    body = json.dumps(header).encode()
    sent = {**AUTH, "Inference-Header-Content-Length": str(len(body) if length is None else length), **headers}
    return requests.post(f"{url}/v2/models/nllinknet/infer", data=body + raw, headers=sent, timeout=60)


def _bytes_input(payload: bytes, declared: int | None = None) -> tuple[dict, bytes]:
    element = struct.pack("<I", len(payload)) + payload
    size = len(element) if declared is None else declared
    return {"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES",
                        "parameters": {"binary_data_size": size}}]}, element


def test_malformed_requests_get_4xx_and_the_server_keeps_answering(served) -> None:
    server, folder, predicted = served
    image = (folder / "scene.png").read_bytes()
    header, element = _bytes_input(image)
    cases = {
        "truncated tensor": _binary_infer(server.url, header, element[:1000]),
        "truncated image": _binary_infer(server.url, *_bytes_input(image[:2000])),
        "wrong dtype": _binary_infer(server.url, {"inputs": [{"name": "image", "shape": [1], "datatype": "FP32",
                                                              "parameters": {"binary_data_size": 4}}]}, b"\0" * 4),
        "wrong shape": _binary_infer(server.url, {"inputs": [{"name": "image", "shape": [2, 5, 5, 3],
                                                              "datatype": "UINT8",
                                                              "parameters": {"binary_data_size": 75}}]}, b"\0" * 75),
        "header length beyond body": _binary_infer(server.url, header, element, length=10**9),
        "huge headers": _binary_infer(server.url, header, element, **{"X-Padding": "a" * 100_000}),
        "bad option": requests.post(f"{server.url}/v2/models/nllinknet/infer", headers=AUTH, timeout=60, json={
            "inputs": [{"name": "image", "shape": [1], "datatype": "BYTES",
                        "data": [base64.b64encode(image).decode()]}], "parameters": {"tta": "d8"}}),
        "too many pixels": _binary_infer(server.url, *_bytes_input(_png(1200, 1000))),
        "v1 not base64": requests.post(f"{server.url}/v1/models/nllinknet:predict", headers=AUTH, timeout=60,
                                       json={"instances": [{"data": "@@"}]}),
    }
    statuses = {case: response.status_code for case, response in cases.items()}
    assert all(400 <= status < 500 for status in statuses.values()), statuses
    assert statuses["too many pixels"] == 413 and statuses["huge headers"] == 431
    assert "tta 'd8' is not allowed" in cases["bad option"].json()["error"]
    assert cases["v1 not base64"].json()["predictions"][0]["code"] == 400
    with pytest.raises(InferenceServerException, match="must be BYTES"):
        tensor = triton_grpc.InferInput("image", [1, 2], "FP32")
        tensor.set_data_from_numpy(np.zeros((1, 2), np.float32))
        triton_grpc.InferenceServerClient(server.grpc_target).infer("nllinknet", [tensor], headers=_auth_grpc())
    assert OipClient(server.url, token=TOKEN).predict(image) == predicted["png"]


def _png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_without_the_token_data_routes_answer_401_and_grpc_unauthenticated(served) -> None:
    server, folder, _ = served
    assert requests.get(f"{server.url}/v2/models/nllinknet", timeout=10).status_code == 401
    refused = requests.post(f"{server.url}/v1/models/nllinknet:predict", json={"instances": []}, timeout=10,
                            headers={"Authorization": "Bearer wrong"})
    assert refused.status_code == 401 and "bearer token" in refused.json()["error"]
    with pytest.raises(InferenceServerException, match="UNAUTHENTICATED"):
        triton_grpc.InferenceServerClient(server.grpc_target).get_model_metadata("nllinknet")
    result = runner.invoke(app, ["client", str(folder / "scene.png"), "--out", str(folder / "x.png"), "--oip",
                                 server.url, "--retries", "0"])
    assert result.exit_code != 0 and "refused the token" in result.output
