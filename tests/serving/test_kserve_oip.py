"""`nltool package --target kserve-oip`: the Dockerfile and the KServe manifests that run `nltool serve`."""

from __future__ import annotations

import shlex

import yaml
from conftest import sharp_linknet
from typer.testing import CliRunner

from nltool.app.cli import app
from nltool.models import save_checkpoint

runner = CliRunner()


def test_writes_a_dockerfile_and_a_v2_inference_service(tmp_path) -> None:
    artifact = save_checkpoint(tmp_path / "roads.pt", sharp_linknet())
    out = tmp_path / "oip"
    result = runner.invoke(app, ["package", "--model", str(artifact), "--out", str(out), "--target", "kserve-oip",
                                 "--name", "roads", "--tta", "flip", "--max-pixels", "4000000", "--gpus", "1"])
    assert result.exit_code == 0, result.output
    assert (out / "roads.pt").read_bytes() == artifact.read_bytes()
    dockerfile = (out / "Dockerfile").read_text()
    assert 'ARG NLTOOL_REQUIREMENT="nltool[kserve]==' in dockerfile  # a checkpoint needs torch only
    assert "COPY roads.pt /models/roads.pt" in dockerfile and "USER 1000" in dockerfile
    runtime, service = yaml.safe_load_all((out / "inferenceservice.yaml").read_text())
    container = runtime["spec"]["containers"][0]
    assert runtime["kind"] == "ServingRuntime" and runtime["spec"]["protocolVersions"] == ["v2", "grpc-v2"]
    args = container["args"]
    assert args[:2] == ["serve", "--model"] and args[2] == "/models/roads.pt"
    options = dict(zip(args[3::2], args[4::2], strict=True))
    assert options["--host"] == "0.0.0.0" and options["--tta"] == "flip" and options["--max-pixels"] == "4000000"
    cmd = dockerfile.split("CMD ", 1)[1].strip()
    assert shlex.split(cmd.strip("[]").replace(",", " ")) == ["nltool", *args]
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": 8080}
    model = service["spec"]["predictor"]["model"]
    assert service["kind"] == "InferenceService" and model["protocolVersion"] == "v2"
    assert model["runtime"] == runtime["metadata"]["name"] and "storageUri" not in model
    assert model["resources"]["limits"]["nvidia.com/gpu"] == "1"


def test_storage_uri_serves_from_mnt_models_and_existing_files_need_force(tmp_path) -> None:
    artifact = save_checkpoint(tmp_path / "roads.pt", sharp_linknet())
    args = ["package", "--model", str(artifact), "--out", str(tmp_path / "oip"), "--target", "kserve-oip",
            "--storage-uri", "s3://bucket/roads"]
    assert runner.invoke(app, args).exit_code == 0
    runtime, service = yaml.safe_load_all((tmp_path / "oip" / "inferenceservice.yaml").read_text())
    assert runtime["spec"]["containers"][0]["args"][2] == "/mnt/models/roads.pt"
    assert service["spec"]["predictor"]["model"]["storageUri"] == "s3://bucket/roads"
    again = runner.invoke(app, args)
    assert again.exit_code != 0 and "pass --force" in again.output
    bad = runner.invoke(app, [*args, "--force", "--name", "Bad_Name"])
    assert bad.exit_code != 0 and "cannot name an InferenceService" in bad.output
