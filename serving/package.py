"""``nltool package``: a TorchServe archive (``<name>.mar``) and a ``config.properties`` for it.

The archive holds the artifact, this package's handler and a model-config.yaml with TorchServe's
worker settings and an ``nltool:`` section of pipeline settings. ``config.properties`` binds every
endpoint to 127.0.0.1, leaves token authorization on (TorchServe's default) and the model API off,
and sizes request/response limits and the response timeout for the configured max pixels.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from nltool.errors import BackendError, NltoolError
from nltool.fileio import atomic_path
from nltool.inference.selection import (
    CHECKPOINT_SUFFIXES,
    ENGINE_SUFFIXES,
    ONNX_SUFFIXES,
    describe_artifact,
    runnable_somewhere,
)
from nltool.inference.tta import TRANSFORMS
from nltool.serving.settings import ServingSettings

HANDLER = Path(__file__).with_name("handler.py")
NETTY_LIMIT = 2**31 - 1
CPU_MEGAPIXELS_PER_SECOND = 0.25
"""A slow CPU's pipeline speed (NL34, no TTA); timeouts assume it so big images are not cut off."""


class PackageError(NltoolError):
    """An archive that could not be built."""


@dataclass(frozen=True)
class Ports:
    """Where TorchServe listens, all on 127.0.0.1."""

    inference: int = 8080
    management: int = 8081
    metrics: int = 8082
    grpc_inference: int = 7070
    grpc_management: int = 7071
    worker: int = 9000
    """First worker socket number: workers talk to the frontend over ``/tmp/.ts.sock.<n>``, shared by
    every TorchServe on the machine, so two servers need different ranges."""


@dataclass(frozen=True)
class PackageResult:
    """The archive, the config, and the command that serves them."""

    mar: Path
    config: Path
    command: str


def response_timeout(settings: ServingSettings) -> int:
    """Seconds for the largest allowed image with the most expensive allowed TTA, at CPU speed."""
    passes = len(settings.pipeline.scales) * max(len(TRANSFORMS[mode]) for mode in settings.allowed_tta)
    return int(60 + settings.pipeline.max_pixels / 1e6 / CPU_MEGAPIXELS_PER_SECOND * passes)


def size_limits(settings: ServingSettings, encoding_factor: float = 1.0) -> tuple[int, int]:
    """(max request, max response) bytes for the largest allowed image: an uncompressed RGBA image
    and twice its 8-bit mask, plus headers; ``encoding_factor`` 4/3 for base64 inside JSON."""
    max_pixels = settings.pipeline.max_pixels
    request = min(NETTY_LIMIT, int((max_pixels * 4 + 2**20) * encoding_factor))
    response = min(NETTY_LIMIT, int((max_pixels * 2 + 2**20) * encoding_factor))
    return request, response


def config_properties(store: Path, settings: ServingSettings, ports: Ports) -> str:
    """TorchServe's config.properties for this store: loopback only, token auth on, sized limits."""
    max_request, max_response = size_limits(settings)
    lines = [
        f"inference_address=http://127.0.0.1:{ports.inference}",
        f"management_address=http://127.0.0.1:{ports.management}",
        f"metrics_address=http://127.0.0.1:{ports.metrics}",
        "grpc_inference_address=127.0.0.1",
        "grpc_management_address=127.0.0.1",
        f"grpc_inference_port={ports.grpc_inference}",
        f"grpc_management_port={ports.grpc_management}",
        f"initial_worker_port={ports.worker}",
        f"model_store={store.resolve()}",
        "disable_token_authorization=false",
        "enable_model_api=false",
        # The handler's custom metrics (tiles, per-stage latency) at /metrics beside TorchServe's own.
        "metrics_mode=prometheus",
        "model_metrics_auto_detect=true",
        f"max_request_size={max_request}",
        f"max_response_size={max_response}",
        f"default_response_timeout={response_timeout(settings)}",
    ]
    return "\n".join(lines) + "\n"


def check_artifact(artifact: Path, settings: ServingSettings) -> None:
    """Refuse a missing file, one no backend runs, or a --backend/--precision no machine could run
    it with, before anything is written."""
    if not artifact.is_file():
        raise PackageError(f"model artifact not found: {artifact}")
    if artifact.suffix.lower() not in CHECKPOINT_SUFFIXES + ONNX_SUFFIXES + ENGINE_SUFFIXES:
        raise PackageError(f"{artifact} is not a checkpoint, ONNX file or TensorRT engine")
    try:
        runnable_somewhere(describe_artifact(artifact), settings.backend, settings.precision,
                           compile=settings.compile)
    except BackendError as exc:
        raise PackageError(str(exc)) from exc


def build_archive(artifact: Path, mar: Path, *, name: str, settings: ServingSettings, workers: int) -> Path:
    """``torch-model-archiver``: ``mar`` holds the artifact, the handler and a model-config.yaml with
    the worker settings and the ``nltool:`` pipeline settings; written atomically."""
    archiver = shutil.which("torch-model-archiver")
    if archiver is None:
        raise PackageError("torch-model-archiver is not installed: pip install 'nltool[serve]'")
    mar.parent.mkdir(parents=True, exist_ok=True)
    model_config = {"minWorkers": workers, "maxWorkers": workers, "batchSize": 1, "maxBatchDelay": 0,
                    "responseTimeout": response_timeout(settings), "nltool": settings.to_dict()}
    with tempfile.TemporaryDirectory() as tmp:
        config_yaml = Path(tmp) / "model-config.yaml"
        config_yaml.write_text(yaml.safe_dump(model_config, sort_keys=False))
        command = [archiver, "--model-name", name, "--version", "1.0", "--serialized-file", str(artifact),
                   "--handler", str(HANDLER), "--config-file", str(config_yaml), "--export-path", tmp, "--force"]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise PackageError(f"torch-model-archiver failed: {done.stderr.strip() or done.stdout.strip()}")
        with atomic_path(mar) as dest:
            shutil.copyfile(Path(tmp) / f"{name}.mar", dest)
    return mar


def package_model(artifact: Path, store: Path, *, name: str = "nllinknet", settings: ServingSettings | None = None,
                  workers: int = 1, ports: Ports | None = None, force: bool = False) -> PackageResult:
    """Write ``store/<name>.mar`` and ``store/config.properties``; returns them and the start command."""
    settings = settings or ServingSettings()
    ports = ports or Ports()
    check_artifact(artifact, settings)
    mar = store / f"{name}.mar"
    if mar.exists() and not force:
        raise PackageError(f"{mar} already exists; pass --force to replace it")
    build_archive(artifact, mar, name=name, settings=settings, workers=workers)
    config = store / "config.properties"
    with atomic_path(config) as dest:
        dest.write_text(config_properties(store, settings, ports))
    start = (f"torchserve --start --ncs --model-store {store} --ts-config {config} "
             f"--models {name}={name}.mar")
    return PackageResult(mar=mar, config=config, command=start)
