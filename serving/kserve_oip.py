"""``nltool package --target kserve-oip``: a container image that runs ``nltool serve`` (the Open
Inference Protocol on KServe's ModelServer) and the KServe manifests that deploy it.

Written to OUT::

    OUT/Dockerfile               installs nltool with the extras the artifact needs, copies the artifact in
    OUT/<artifact file>          the model, baked into the image at /models/
    OUT/inferenceservice.yaml    a ServingRuntime running that image (protocols v2 and grpc-v2) and an
                                 InferenceService using it (protocolVersion v2, readiness on /v2/health/ready)

``docker build -t IMAGE OUT`` gives an image that serves on a laptop (``docker run -p 8080:8080
IMAGE``) exactly as it serves in the cluster. In the cluster the container listens on all its
interfaces (the pod's network); authentication belongs to KServe's ingress, as for ``--target kserve``.
With ``--storage-uri`` the InferenceService has KServe download the artifact to /mnt/models instead.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from nltool import __version__
from nltool.fileio import atomic_path
from nltool.inference.selection import CHECKPOINT_SUFFIXES, ENGINE_SUFFIXES
from nltool.serving.kserve import MODEL_ROOT, Deployment, check_service_name, resources, service_manifest
from nltool.serving.package import PackageError, check_artifact
from nltool.serving.settings import ServingSettings

HTTP_PORT = 8080
GRPC_PORT = 8081
IMAGE_MODELS = "/models"
"""Where the Dockerfile puts the artifact inside the image."""
BASE_IMAGE = "python:3.11-slim"


@dataclass(frozen=True)
class OipPackage:
    """What ``package_for_kserve_oip`` wrote."""

    root: Path
    dockerfile: Path
    artifact: Path
    manifest: Path


def image_extras(artifact: Path, gpus: int) -> list[str]:
    """The extras the image installs: kserve, plus what runs this artifact (checkpoints need only torch,
    a core dependency; ONNX onnxruntime or onnxruntime-gpu; engines TensorRT)."""
    suffix = artifact.suffix.lower()
    runtime = [] if suffix in CHECKPOINT_SUFFIXES else ["trt"] if suffix in ENGINE_SUFFIXES else [
        "gpu" if gpus else "cpu"]
    return ["kserve", *runtime]


def serve_args(artifact: str, name: str, settings: ServingSettings) -> list[str]:
    """``nltool serve``'s arguments in the container: every interface, the fixed ports, these settings."""
    pipeline = settings.pipeline
    return ["serve", "--model", artifact, "--name", name, "--host", "0.0.0.0", "--http-port", str(HTTP_PORT),
            "--grpc-port", str(GRPC_PORT), "--tile", str(pipeline.tile), "--overlap", str(pipeline.overlap),
            "--tta", pipeline.tta, "--scales", ",".join(map(str, pipeline.scales)),
            "--threshold", str(pipeline.threshold), "--format", settings.format,
            "--max-pixels", str(pipeline.max_pixels), "--backend", settings.backend, "--precision", settings.precision]


def dockerfile(artifact: Path, name: str, settings: ServingSettings, gpus: int) -> str:
    """The image: nltool with its extras (build argument ``NLTOOL_REQUIREMENT``), the artifact, a non-root
    user, and ``nltool serve`` as its command."""
    requirement = f"nltool[{','.join(image_extras(artifact, gpus))}]"
    command = ", ".join(f'"{arg}"' for arg in ["nltool", *serve_args(f"{IMAGE_MODELS}/{artifact.name}", name,
                                                                     settings)])
    return "\n".join([
        f"# Built by nltool {__version__}: docker build -t IMAGE .  (then: docker run -p {HTTP_PORT}:{HTTP_PORT} "
        f"-p {GRPC_PORT}:{GRPC_PORT} IMAGE)",
        f"FROM {BASE_IMAGE}",
        "# A PEP 508 requirement: this version from the package index, or e.g. '<extras> @ git+https://...'.",
        f'ARG NLTOOL_REQUIREMENT="{requirement}=={__version__}"',
        'RUN pip install --no-cache-dir "${NLTOOL_REQUIREMENT}"',
        "RUN useradd --create-home --uid 1000 nltool",
        f"COPY {artifact.name} {IMAGE_MODELS}/{artifact.name}",
        "USER 1000",
        f"EXPOSE {HTTP_PORT} {GRPC_PORT}",
        f"CMD [{command}]",
        "",
    ])


def manifests(artifact: Path, name: str, deployment: Deployment, settings: ServingSettings,
              image: str) -> list[dict[str, object]]:
    """A ServingRuntime that runs the image, and the InferenceService that uses it with protocol v2."""
    model_dir = MODEL_ROOT if deployment.storage_uri else IMAGE_MODELS
    probe: dict[str, Any] = {"httpGet": {"path": "/v2/health/ready", "port": HTTP_PORT}, "initialDelaySeconds": 5,
             "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 30}
    liveness: dict[str, Any] = {**probe, "httpGet": {"path": "/v2/health/live", "port": HTTP_PORT}}
    runtime: dict[str, object] = {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "ServingRuntime",
        "metadata": {"name": f"{name}-nltool"},
        "spec": {
            "supportedModelFormats": [{"name": "nltool", "version": "1", "autoSelect": True}],
            "protocolVersions": ["v2", "grpc-v2"],
            "containers": [{
                "name": "kserve-container",
                "image": image,
                "command": ["nltool"],
                "args": serve_args(f"{model_dir}/{artifact.name}", name, settings),
                "ports": [{"containerPort": HTTP_PORT, "protocol": "TCP"}],
                "readinessProbe": probe,
                "livenessProbe": liveness,
            }],
        },
    }
    model: dict[str, object] = {
        "modelFormat": {"name": "nltool", "version": "1"},
        "runtime": f"{name}-nltool",
        "protocolVersion": "v2",
        "resources": resources(deployment),
    }
    if deployment.storage_uri:
        model["storageUri"] = deployment.storage_uri
    # Each replica runs one request at a time through its model instance(s).
    return [runtime, service_manifest(name, deployment, settings, scale_target=1, model=model)]


def package_for_kserve_oip(artifact: Path, out: Path, deployment: Deployment, *, name: str = "nllinknet",
                           settings: ServingSettings | None = None, image: str | None = None,
                           force: bool = False) -> OipPackage:
    """Write ``out/Dockerfile``, ``out/<artifact>`` and ``out/inferenceservice.yaml`` (nothing on failure)."""
    settings = settings or ServingSettings()
    check_service_name(name)
    check_artifact(artifact, settings)
    package = OipPackage(root=out, dockerfile=out / "Dockerfile", artifact=out / artifact.name,
                         manifest=out / "inferenceservice.yaml")
    existing = [p for p in (package.dockerfile, package.artifact, package.manifest) if p.exists()]
    if existing and not force:
        raise PackageError(f"{existing[0]} already exists; pass --force to replace it")
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(package.artifact) as dest:
        shutil.copyfile(artifact, dest)
    with atomic_path(package.dockerfile) as dest:
        dest.write_text(dockerfile(artifact, name, settings, deployment.gpus))
    documents = manifests(artifact, name, deployment, settings, image or f"nltool-{name}:{__version__}")
    with atomic_path(package.manifest) as dest:
        dest.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    return package
