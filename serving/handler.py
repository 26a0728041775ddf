"""The TorchServe handler: a thin adapter over :mod:`nltool.inference`.

``initialize`` loads the archive's artifact and the ``nltool:`` section of its model-config.yaml;
``preprocess`` decodes each request (raw image bytes, or multipart ``data`` plus option fields;
options may also come as ``X-Nltool-Tta`` / ``-Threshold`` / ``-Format`` / ``-Summary`` headers;
or, behind KServe's v1 protocol, instances ``{"data": "<base64 image>", "tta": ...}``, answered
with JSON ``{"data": "<base64 answer>", "format", "content_type"}``);
``inference`` runs the same pipeline and mask writer as ``nltool predict``, so masks are
byte-identical (``format=geojson`` answers the road network vectorized from the same streamed
probabilities, as ``predict --vectors geojson`` writes it); ``postprocess`` answers each request
with its mask (or, with ``summary=true``, a JSON summary carrying the mask in base64) or a JSON
error with its own status: 4xx with the message of every :class:`~nltool.errors.NltoolError` (bad
input, bad options), 500 for anything else (logged with its traceback), so no request takes the
worker down. Every answered request adds custom metrics (tiles, per-stage latency) through
TorchServe's metrics API.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import torch
from ts.torch_handler.base_handler import BaseHandler

from nltool.serving.service import RoadService, load_served_backend
from nltool.serving.settings import (
    CONTENT_TYPES,
    REQUEST_OPTIONS,
    RequestError,
    ServingRequest,
    ServingSettings,
    decode_instance,
    instance_answer,
)

logger = logging.getLogger(__name__)
REASONS = {400: "Bad Request", 413: "Payload Too Large", 500: "Internal Server Error"}


class NLLinkNetHandler(BaseHandler):
    """Serves road masks for images of any size."""

    def initialize(self, context: Any) -> None:
        properties = context.system_properties
        model_dir = Path(properties["model_dir"])
        config = getattr(context, "model_yaml_config", None) or {}
        self.settings = ServingSettings.from_dict(config.get("nltool"))
        artifact = model_dir / context.manifest["model"]["serializedFile"]
        gpu_id = properties.get("gpu_id")
        device = f"cuda:{gpu_id}" if torch.cuda.is_available() and gpu_id is not None else "cpu"
        if device == "cpu":  # workers share the cores instead of each grabbing all of them
            workers = max(1, int(config.get("minWorkers", 1)))
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
        self.service = RoadService(load_served_backend(artifact, self.settings, device), self.settings)
        self.initialized = True

    def _options(self, row: dict[str, Any], idx: int, headers: bool) -> dict[str, str]:
        options = {}
        for name in REQUEST_OPTIONS:
            value = row.get(name)
            if value is None and headers and self.context is not None:
                value = self.context.get_request_header(idx, f"X-Nltool-{name.capitalize()}")
            if value is not None:
                options[name] = value.decode() if isinstance(value, (bytes, bytearray)) else str(value)
        return options

    def preprocess(self, data: list[dict[str, Any]]) -> list[ServingRequest]:
        requests = []
        for idx, row in enumerate(data):
            body = row.get("data") if row.get("data") is not None else row.get("body")
            if isinstance(body, str):  # a KServe v1 instance {"data": "<base64 image>", ...options}
                requests.append(decode_instance(body, self._options(row, idx, headers=False)))
                continue
            if not body:
                requests.append(ServingRequest(error=RequestError("empty request body: send the image bytes "
                                                            "(or multipart field 'data')")))
                continue
            requests.append(ServingRequest(image=bytes(body), options=self._options(row, idx, headers=True)))
        return requests

    def inference(self, requests: list[ServingRequest], *args: Any, **kwargs: Any) -> list[ServingRequest]:
        for idx, request in enumerate(requests):
            self.service.serve(request)
            if request.error is None:
                self._add_metrics(request.summary, idx)  # type: ignore[arg-type]
        return requests

    def _add_metrics(self, summary: dict[str, Any], idx: int) -> None:
        """Tiles processed and per-stage latency, as TorchServe custom metrics (model_metrics.log)."""
        metrics = self.context.metrics
        metrics.add_counter("NltoolTilesProcessed", summary["tiles"], idx)
        metrics.add_counter("NltoolBackendImages", summary["backend_images"], idx)
        for stage, seconds in summary["seconds"].items():
            metrics.add_time(f"Nltool{stage.capitalize()}Latency", seconds * 1000.0, idx, "ms")

    def postprocess(self, requests: list[ServingRequest]) -> list[Any]:
        answers: list[Any] = []
        for idx, request in enumerate(requests):
            if request.json_answer:  # KServe v1: the envelope wraps these in {"predictions": [...]}
                answers.append(instance_answer(request))
                if request.error is not None and len(requests) == 1:
                    self.context.set_response_status(request.error.status, REASONS[request.error.status], idx)
            elif request.error is not None:
                body = {"code": request.error.status, "type": type(request.error).__name__,
                        "message": str(request.error)}
                # The reason phrase crosses TorchServe's wire protocol, which counts characters as
                # bytes: keep it ASCII and put the full (possibly non-ASCII) message in the body.
                self.context.set_response_status(request.error.status, REASONS[request.error.status], idx)
                self.context.set_response_content_type(idx, "application/json")
                answers.append(json.dumps(body).encode())
            else:
                self.context.set_response_content_type(idx, CONTENT_TYPES[request.fmt])
                answers.append(request.answer)
        return answers
