"""``nltool package --target kserve``: the layout and keys KServe's TorchServe runtime documents, an
InferenceService manifest, and TorchServe started from that layout as KServe's runtime starts it,
answering KServe's v1 protocol with the mask ``nltool predict`` writes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import sharp_linknet
from PIL import Image
from typer.testing import CliRunner

from nltool.app.cli import app
from nltool.models import save_checkpoint

pytest.importorskip("ts", reason="TorchServe (the [serve] extra) is not installed")

runner = CliRunner()
DOCUMENTED_KEYS = {
    "inference_address", "management_address", "metrics_address", "grpc_inference_port", "grpc_management_port",
    "enable_metrics_api", "metrics_format", "number_of_netty_threads", "job_queue_size", "enable_envvars_config",
    "install_py_dep_per_model", "model_store", "model_snapshot",
}
"""Every key of the config.properties sample in KServe's TorchServe guide."""


def read_properties(path: Path) -> dict[str, str]:
    """A Java properties file of ``key=value`` lines (``#`` comments) as a dict."""
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if line.strip() and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = sharp_linknet()
    return save_checkpoint(tmp_path_factory.mktemp("kserve") / "model.pt", model)


def test_layout_config_and_manifest_have_what_kserve_documents(checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "roads"
    result = runner.invoke(app, ["package", "--model", str(checkpoint), "--out", str(out), "--name", "roads",
                                 "--target", "kserve", "--storage-uri", "s3://models/roads", "--gpus", "1",
                                 "--min-replicas", "0", "--max-replicas", "4", "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == [
        "config/config.properties", "inferenceservice.yaml", "model-store/roads.mar"]

    config = read_properties(out / "config" / "config.properties")
    assert config.keys() >= DOCUMENTED_KEYS
    assert config["model_store"] == "/mnt/models/model-store"
    assert config["enable_envvars_config"] == "true", "the runtime picks the v1 envelope through TS_SERVICE_ENVELOPE"
    assert config["inference_address"] == "http://127.0.0.1:8085", "only KServe's model server in the pod calls it"
    assert config["disable_token_authorization"] == "true" and config["enable_model_api"] == "false"
    snapshot = json.loads(config["model_snapshot"])
    assert snapshot["modelCount"] == 1
    version = snapshot["models"]["roads"]["1.0"]
    assert version["marName"] == "roads.mar" and version["defaultVersion"] is True
    assert (version["minWorkers"], version["maxWorkers"], version["batchSize"]) == (2, 2, 1)
    assert version["responseTimeout"] == int(config["default_response_timeout"]) > 60

    manifest = yaml.safe_load((out / "inferenceservice.yaml").read_text())
    assert (manifest["apiVersion"], manifest["kind"], manifest["metadata"]["name"]) == (
        "serving.kserve.io/v1beta1", "InferenceService", "roads")
    predictor = manifest["spec"]["predictor"]
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (0, 4)
    model = predictor["model"]
    assert model["modelFormat"]["name"] == "pytorch" and model["protocolVersion"] == "v1"
    assert model["storageUri"] == "s3://models/roads"
    assert model["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert {"cpu", "memory"} <= model["resources"]["requests"].keys()
    assert model["readinessProbe"]["httpGet"] == {"path": "/v1/models/roads", "port": 8080}


def test_names_kubernetes_refuses_are_refused(checkpoint: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["package", "--model", str(checkpoint), "--out", str(tmp_path / "x"), "--name",
                                 "NL_LinkNet", "--target", "kserve"])
    assert result.exit_code == 1 and "cannot name an InferenceService" in result.output


@pytest.mark.slow
def test_torchserve_started_as_kserve_starts_it_answers_like_predict(checkpoint: Path, tmp_path: Path) -> None:
    if shutil.which("java") is None:
        pytest.skip("TorchServe needs Java (a JDK 17) on the PATH")
    from nltool.serving.client import ClientError, KServeClient
    from nltool.serving.kserve import Deployment, KServeTorchServe, package_for_kserve
    from nltool.serving.server import free_ports

    ports = free_ports()
    ports = type(ports)(ports.inference, ports.inference, ports.metrics, ports.grpc_inference, ports.grpc_management,
                        ports.worker)  # inference and management share a port, as in KServe's sample
    root = tmp_path / "kserve"
    package_for_kserve(checkpoint, root, Deployment("pvc://models/roads"), name="roads", ports=ports)
    rgb = (np.random.default_rng(5).random((700, 900, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "scene.png")
    predicted = runner.invoke(app, ["predict", str(tmp_path / "scene.png"), "--model", str(checkpoint), "--out",
                                    str(tmp_path / "pred"), "--device", "cpu"])
    assert predicted.exit_code == 0, predicted.output
    expected = (tmp_path / "pred" / "scene_mask.png").read_bytes()
    with KServeTorchServe(root, ["roads"], tmp_path / "run", ports) as server:
        out = tmp_path / "served.png"
        result = runner.invoke(app, ["client", str(tmp_path / "scene.png"), "--out", str(out), "--kserve",
                                     server.url, "--model-name", "roads"])
        assert result.exit_code == 0, result.output
        assert out.read_bytes() == expected
        with pytest.raises(ClientError, match="is not a PNG, JPEG or TIFF/GeoTIFF image"):
            KServeClient(server.url, "roads", retries=0).predict(b"just some text")
