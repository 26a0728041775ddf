"""``nltool package --target kserve``: what KServe's TorchServe runtime loads, and the
``InferenceService`` that deploys it.

KServe's ``kserve-torchserve`` ClusterServingRuntime downloads the ``storageUri`` to ``/mnt/models``
and starts ``torchserve --start --model-store=/mnt/models/model-store
--ts-config=/mnt/models/config/config.properties`` with ``TS_SERVICE_ENVELOPE`` set from the
predictor's protocol (``kserve`` for v1); a KServe model server in the same container answers on
port 8080 and forwards to TorchServe's inference address (8085). So the layout is::

    OUT/config/config.properties     the keys KServe's documented sample sets, our limits
    OUT/model-store/<name>.mar       the archive ``nltool package`` builds
    OUT/inferenceservice.yaml        the InferenceService (resources, GPUs, replicas, readiness)

Behind KServe, TorchServe's token authorization is off (KServe's model server forwards requests
without it; authentication belongs to KServe's ingress) and TorchServe listens on the pod's
loopback only, except metrics (8082), which Prometheus scrapes from outside the pod.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import yaml

from nltool.fileio import atomic_path
from nltool.serving.package import (
    PackageError,
    Ports,
    build_archive,
    check_artifact,
    response_timeout,
    size_limits,
)
from nltool.serving.server import PROBE, LocalTorchServe
from nltool.serving.settings import ServingSettings

MODEL_ROOT = "/mnt/models"
"""Where KServe's storage initializer puts the ``storageUri``."""
KSERVE_PORTS = Ports(inference=8085, management=8085, metrics=8082, grpc_inference=7070, grpc_management=7071)
"""TorchServe's ports in KServe's sample config (inference and management share 8085)."""
SERVER_PORT = 8080
"""The KServe model server's port in the container: what the ingress and the readiness probe reach."""
ENVELOPE = "kserve"
"""``TS_SERVICE_ENVELOPE`` for KServe's v1 protocol (what the runtime sets for ``protocolVersion: v1``)."""
_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,43}[a-z0-9])?$")


@dataclass(frozen=True)
class Deployment:
    """How the InferenceService runs: where the model store is, resources, GPUs, replicas."""

    storage_uri: str
    cpu: str = "2"
    memory: str = "4Gi"
    gpus: int = 0
    min_replicas: int = 1
    max_replicas: int = 1

    def __post_init__(self) -> None:
        if self.gpus < 0 or self.min_replicas < 0 or self.max_replicas < max(1, self.min_replicas):
            raise PackageError(f"need gpus >= 0 and 0 <= min replicas <= max replicas (>= 1); got gpus {self.gpus}, "
                               f"replicas {self.min_replicas}-{self.max_replicas}")


@dataclass(frozen=True)
class KServePackage:
    """What ``package_for_kserve`` wrote."""

    root: Path
    config: Path
    mar: Path
    manifest: Path


def model_snapshot(name: str, workers: int, settings: ServingSettings) -> dict[str, object]:
    """TorchServe's startup snapshot: the model KServe's runtime loads (it passes no ``--models``)."""
    return {"name": "startup.cfg", "modelCount": 1, "models": {name: {"1.0": {
        "defaultVersion": True, "marName": f"{name}.mar", "minWorkers": workers, "maxWorkers": workers,
        "batchSize": 1, "maxBatchDelay": 0, "responseTimeout": response_timeout(settings)}}}}


def kserve_config_properties(name: str, settings: ServingSettings, workers: int, ports: Ports = KSERVE_PORTS) -> str:
    """config.properties for KServe's TorchServe runtime: the keys of KServe's sample, with the
    inference and management APIs on the pod's loopback, token auth off, the model API off, and
    request limits sized for base64 images in JSON."""
    max_request, max_response = size_limits(settings, encoding_factor=4 / 3)
    properties = {
        "inference_address": f"http://127.0.0.1:{ports.inference}",
        "management_address": f"http://127.0.0.1:{ports.management}",
        "metrics_address": f"http://0.0.0.0:{ports.metrics}",
        "grpc_inference_address": "127.0.0.1",
        "grpc_management_address": "127.0.0.1",
        "grpc_inference_port": ports.grpc_inference,
        "grpc_management_port": ports.grpc_management,
        "initial_worker_port": ports.worker,
        "enable_metrics_api": "true",
        "metrics_format": "prometheus",  # the name in KServe's sample; TorchServe 0.12 reads metrics_mode
        "metrics_mode": "prometheus",
        "model_metrics_auto_detect": "true",
        "number_of_netty_threads": 4,
        "job_queue_size": 10,
        "enable_envvars_config": "true",  # lets the runtime's TS_SERVICE_ENVELOPE choose the protocol
        "install_py_dep_per_model": "false",  # the archive needs nothing installed at start-up
        "disable_token_authorization": "true",  # KServe's model server sends no token: auth is the ingress's
        "enable_model_api": "false",
        "max_request_size": max_request,
        "max_response_size": max_response,
        "default_response_timeout": response_timeout(settings),
        "model_store": f"{MODEL_ROOT}/model-store",
        "model_snapshot": json.dumps(model_snapshot(name, workers, settings), separators=(",", ":")),
    }
    return "".join(f"{key}={value}\n" for key, value in properties.items())


def check_service_name(name: str) -> None:
    """Refuse a ``--name`` that cannot name an InferenceService (a DNS label KServe can prefix)."""
    if not _DNS_LABEL.match(name):
        raise PackageError(f"--name {name!r} cannot name an InferenceService: use lowercase letters, digits and "
                           "'-', starting with a letter, at most 45 characters")


def resources(deployment: Deployment) -> dict[str, dict[str, str]]:
    """The predictor's requests and limits (a GPU limit when ``deployment.gpus``)."""
    limits: dict[str, str] = {"cpu": deployment.cpu, "memory": deployment.memory}
    if deployment.gpus:
        limits["nvidia.com/gpu"] = str(deployment.gpus)
    return {"requests": {"cpu": deployment.cpu, "memory": deployment.memory}, "limits": limits}


def service_manifest(name: str, deployment: Deployment, settings: ServingSettings, *, scale_target: int,
                     model: dict[str, object]) -> dict[str, object]:
    """An ``InferenceService`` (KServe v1beta1) around ``model``: replicas, concurrency scaling to
    ``scale_target`` requests a replica, the response timeout, Prometheus scraping."""
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name, "annotations": {"serving.kserve.io/enable-prometheus-scraping": "true"}},
        "spec": {"predictor": {
            "minReplicas": deployment.min_replicas,
            "maxReplicas": deployment.max_replicas,
            "scaleMetric": "concurrency",
            "scaleTarget": scale_target,
            "timeout": response_timeout(settings),
            "model": model,
        }},
    }


def inference_service(name: str, deployment: Deployment, settings: ServingSettings, workers: int) -> dict[str, object]:
    """The ``InferenceService`` manifest (KServe v1beta1, protocol v1, the TorchServe runtime); one request
    per TorchServe worker at a time."""
    return service_manifest(name, deployment, settings, scale_target=workers, model={
        "modelFormat": {"name": "pytorch"},
        "protocolVersion": "v1",
        "storageUri": deployment.storage_uri,
        "resources": resources(deployment),
        "readinessProbe": {
            "httpGet": {"path": f"/v1/models/{name}", "port": SERVER_PORT},
            "initialDelaySeconds": 10, "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 30,
        },
    })


def package_for_kserve(artifact: Path, out: Path, deployment: Deployment, *, name: str = "nllinknet",
                       settings: ServingSettings | None = None, workers: int = 1, ports: Ports = KSERVE_PORTS,
                       force: bool = False) -> KServePackage:
    """Write ``out/config/config.properties``, ``out/model-store/<name>.mar`` and
    ``out/inferenceservice.yaml``. Upload ``config/`` and ``model-store/`` to the storage URI."""
    settings = settings or ServingSettings()
    check_service_name(name)
    check_artifact(artifact, settings)
    package = KServePackage(root=out, config=out / "config" / "config.properties",
                            mar=out / "model-store" / f"{name}.mar", manifest=out / "inferenceservice.yaml")
    existing = [p for p in (package.config, package.mar, package.manifest) if p.exists()]
    if existing and not force:
        raise PackageError(f"{existing[0]} already exists; pass --force to replace it")
    build_archive(artifact, package.mar, name=name, settings=settings, workers=workers)
    package.config.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(package.config) as dest:
        dest.write_text(kserve_config_properties(name, settings, workers, ports))
    with atomic_path(package.manifest) as dest:
        dest.write_text(yaml.safe_dump(inference_service(name, deployment, settings, workers), sort_keys=False))
    return package


class KServeTorchServe(LocalTorchServe):
    """TorchServe started on this machine exactly as KServe's runtime starts it from a package:
    ``--model-store=ROOT/model-store --ts-config=ROOT/config/config.properties`` (the model comes
    from the config's snapshot) and ``TS_SERVICE_ENVELOPE=kserve``; it answers KServe v1 requests
    at ``/v1/models/<name>:predict``, where KServe's model server forwards them."""

    def __init__(self, root: Path, models: list[str], folder: Path, ports: Ports) -> None:
        super().__init__(Path(root) / "model-store", models, folder, ports)
        self.root = Path(root).resolve()
        self.env["TS_SERVICE_ENVELOPE"] = ENVELOPE

    def command(self) -> list[str]:
        return ["torchserve", "--start", f"--model-store={self.root / 'model-store'}",
                f"--ts-config={self.root / 'config' / 'config.properties'}"]

    def answers(self, requests: ModuleType) -> bool:
        from nltool.serving.client import KServeClient

        return all(bool(KServeClient(self.url, m, retries=0, timeout=60).predict(PROBE)) for m in self.models)
