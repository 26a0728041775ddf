"""``nltool client --oip URL | --oip-grpc HOST:PORT``: the Open Inference Protocol through Triton's
client library (``tritonclient``), against ``nltool serve`` or any server hosting the model with
the same tensors (input ``image`` BYTES, outputs ``mask`` / ``geojson`` / ``summary``)."""

from __future__ import annotations

import base64
import json
import threading
from typing import Any

import numpy as np

from nltool.optional import require
from nltool.serving.client import BaseClient
from nltool.serving.oip import INPUT

TOKEN_HELP = "pass --bearer-token-file with the token the server was started with (nltool serve --token-file)"


class OipClient(BaseClient):
    """One image per request as a BYTES ``image`` tensor; options as request parameters; the bearer
    token as an ``Authorization`` header (REST) or ``authorization`` metadata (gRPC)."""

    def __init__(self, target: str, model: str = "nllinknet", token: str | None = None, timeout: float = 600.0,
                 retries: int = 3, *, grpc: bool = False) -> None:
        super().__init__(model, token, timeout, retries)
        self.target, self.grpc = target, grpc
        self._utils = require("tritonclient.utils", "the Open Inference Protocol client")
        kind = "gRPC" if grpc else "REST"
        self._module: Any = require(f"tritonclient.{'grpc' if grpc else 'http'}",
                                    f"the Open Inference Protocol {kind} client")
        self._local = threading.local()
        self._opened: list[Any] = []

    @property
    def _client(self) -> Any:
        """This thread's tritonclient client (its REST client runs on gevent and must not cross threads)."""
        client = getattr(self._local, "client", None)
        if client is None:
            if self.grpc:
                client = self._module.InferenceServerClient(self.target)
            else:
                client = self._module.InferenceServerClient(
                    self.target.split("://", 1)[-1].rstrip("/"), ssl=self.target.startswith("https://"),
                    connection_timeout=self.timeout, network_timeout=self.timeout)
            self._local.client = client
            self._opened.append(client)
        return client

    def _headers(self) -> dict[str, str]:
        if not self.token:
            return {}
        return {("authorization" if self.grpc else "Authorization"): f"Bearer {self.token}"}

    def _send(self, image: bytes, fields: dict[str, str]) -> tuple[bool, bytes, str]:
        fields = dict(fields)
        summary = fields.pop("summary", None) == "true"
        tensor = self._module.InferInput(INPUT, [1], "BYTES")
        tensor.set_data_from_numpy(np.array([image], dtype=np.object_))
        names = ["geojson" if fields.get("format") == "geojson" else "mask", *(["summary"] if summary else [])]
        outputs = [self._module.InferRequestedOutput(name) for name in names]
        extra = {"client_timeout": self.timeout} if self.grpc else {}
        try:
            result = self._client.infer(self.model, [tensor], outputs=outputs, headers=self._headers(),
                                        parameters=fields or None, **extra)
        except self._utils.InferenceServerException as exc:
            return self._explain(exc)
        except OSError as exc:  # REST: refused or reset connections (a server still starting)
            return True, b"", f"cannot reach {self.target}: is nltool serve running? ({exc})"
        answer = bytes(result.as_numpy(names[0])[0])
        if summary:
            details = json.loads(bytes(result.as_numpy("summary")[0]))
            details["output_base64"] = base64.b64encode(answer).decode("ascii")
            return False, json.dumps(details).encode(), ""
        return False, answer, ""

    def _explain(self, exc: Any) -> tuple[bool, bytes, str]:
        """(retryable, b'', message) for an error status from the server (HTTP code or gRPC status)."""
        status, message = str(exc.status() or ""), str(exc.message() or exc)
        if status in ("401", "StatusCode.UNAUTHENTICATED"):
            return False, b"", f"the server refused the token: {TOKEN_HELP}"
        if status in ("404", "StatusCode.NOT_FOUND"):
            return False, b"", f"the server has no model {self.model!r} ({message}); check --model-name"
        if status in ("413", "StatusCode.RESOURCE_EXHAUSTED"):
            return False, b"", f"the image is too large for this server: {message}"
        if status in ("503", "StatusCode.UNAVAILABLE"):
            return True, b"", f"cannot reach {self.target} or it is not ready: {message}"
        return False, b"", f"the server answered {status or 'an error'}: {message}"

    def close(self) -> None:
        """Close the connections of every thread that sent a request."""
        for client in self._opened:
            client.close()
        self._opened.clear()
