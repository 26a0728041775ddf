"""Clients for a served nltool model, REST and gRPC: the token from TorchServe's key_file.json,
per-request options, retries (503/UNAVAILABLE and refused connections, with back-off), timeouts,
and errors said in terms of what to do.

Both send the same request options (``tta``, ``threshold``, ``format``, ``summary``): REST as
``X-Nltool-<Option>`` headers, gRPC as extra entries of the ``input`` map beside ``data``.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nltool.errors import NltoolError
from nltool.optional import require

MAX_GRPC_MESSAGE = 2**31 - 1
"""gRPC message limit on the client side (its default receive limit is 4 MiB, too small for masks)."""
TOKEN_HELP = ("pass --token-file with the key_file.json TorchServe wrote in the folder it was started from "
              "(its 'inference' key)")


class ClientError(NltoolError):
    """A request the server refused or could not answer, said in terms of what to do."""


def read_token(key_file: Path) -> str:
    """The inference token TorchServe wrote to ``key_file.json`` in the folder it was started from."""
    try:
        keys = json.loads(key_file.read_text())
        return str(keys["inference"]["key"])
    except FileNotFoundError as exc:
        raise ClientError(f"token file {key_file} not found: TorchServe writes key_file.json in the folder "
                          "it was started from; pass --token-file") from exc
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise ClientError(f"{key_file} is not TorchServe's key_file.json (no inference key)") from exc


def backoff(attempt: int) -> float:
    """Seconds to wait before retry ``attempt`` (0-based): 1, 2, 4, 8, then 10."""
    return float(min(2**attempt, 10))


def wait_for_token(key_file: Path, retries: int) -> str:
    """:func:`read_token`, waiting with back-off while the file does not exist yet (TorchServe
    writes it a moment after ``torchserve --start`` returns)."""
    for attempt in range(retries):
        if key_file.exists():
            break
        time.sleep(backoff(attempt))
    return read_token(key_file)


@dataclass(frozen=True)
class RequestOptions:
    """What one request asks of the server beyond its defaults (``None``: the server's setting)."""

    tta: str | None = None
    threshold: float | None = None
    fmt: str | None = None
    summary: bool = False

    def fields(self) -> dict[str, str]:
        """The options as the handler reads them: name -> text."""
        fields = {"tta": self.tta, "threshold": self.threshold, "format": self.fmt}
        out = {name: str(value) for name, value in fields.items() if value is not None}
        if self.summary:
            out["summary"] = "true"
        return out


def split_summary(payload: bytes) -> tuple[bytes, dict[str, Any]]:
    """A summary answer -> (the mask/probability/GeoTIFF bytes, the summary without them)."""
    summary = json.loads(payload)
    return base64.b64decode(summary.pop("output_base64")), summary


def handler_error(answer: bytes) -> tuple[int, str] | None:
    """(status, message) when ``answer`` is the handler's JSON error body, else ``None``.

    TorchServe's gRPC API answers OK with whatever body the handler wrote, dropping the 4xx status
    the handler set (REST keeps it); successful answers are PNG/TIFF bytes or a summary without
    ``code``, so the error body is recognised by its shape.
    """
    if not answer.startswith(b"{"):
        return None
    try:
        body = json.loads(answer)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if isinstance(body, dict) and isinstance(body.get("code"), int) and "message" in body:
        return body["code"], str(body["message"])
    return None


def _server_message(text: str) -> str:
    """The ``message`` of a JSON error body (the handler's or TorchServe's), or the text as it came."""
    error = handler_error(text.encode())
    return text if error is None else error[1]


class BaseClient:
    """What both transports share: the model, the token, retries; subclasses send one request."""

    def __init__(self, model: str = "nllinknet", token: str | None = None, timeout: float = 600.0,
                 retries: int = 3) -> None:
        self.model, self.token, self.timeout, self.retries = model, token, timeout, retries

    def _send(self, image: bytes, fields: dict[str, str]) -> tuple[bool, bytes, str]:
        """One request: (retryable, answer, error message or '')."""
        raise NotImplementedError

    def _status_error(self, status: int, message: str) -> str:
        """What an HTTP-style error status from TorchServe or the handler means, said for the user."""
        if status == 401 or "Token Authorization failed" in message:
            return f"TorchServe refused the token: {TOKEN_HELP}"
        if status == 404:
            return f"TorchServe has no model {self.model!r} ({message}); check --model-name / the --models list"
        if status == 413:
            return f"the image is too large for this server: {message}"
        return f"TorchServe answered {status}: {message}"

    def _request(self, image: bytes, options: RequestOptions) -> bytes:
        for attempt in range(self.retries + 1):
            retryable, answer, error = self._send(image, options.fields())
            if not error:
                return answer
            if not retryable or attempt == self.retries:
                raise ClientError(error)
            time.sleep(backoff(attempt))
        raise AssertionError("unreachable")

    def predict(self, image: bytes, *, tta: str | None = None, threshold: float | None = None,
                fmt: str | None = None) -> bytes:
        """The mask (or probability PNG / GeoTIFF) bytes for ``image``."""
        return self._request(image, RequestOptions(tta, threshold, fmt))

    def predict_with_summary(self, image: bytes, *, tta: str | None = None, threshold: float | None = None,
                             fmt: str | None = None) -> tuple[bytes, dict[str, Any]]:
        """The answer bytes and the server's summary (size, road fraction, tiles, seconds per stage)."""
        return split_summary(self._request(image, RequestOptions(tta, threshold, fmt, summary=True)))


class RestClient(BaseClient):
    """``POST /predictions/<model>`` with the image bytes; options as X-Nltool-* headers."""

    def __init__(self, url: str = "http://127.0.0.1:8080", model: str = "nllinknet", token: str | None = None,
                 timeout: float = 600.0, retries: int = 3) -> None:
        super().__init__(model, token, timeout, retries)
        self.url = url.rstrip("/")
        self._requests = require("requests", "the REST client")

    def _send(self, image: bytes, fields: dict[str, str]) -> tuple[bool, bytes, str]:
        headers = {"Content-Type": "application/octet-stream"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        headers.update({f"X-Nltool-{name.capitalize()}": value for name, value in fields.items()})
        endpoint = f"{self.url}/predictions/{self.model}"
        requests = self._requests
        try:
            response = requests.post(endpoint, data=image, headers=headers, timeout=self.timeout)
        except requests.ConnectionError as exc:  # retried: a server that is starting refuses connections
            return True, b"", f"cannot reach TorchServe at {self.url}: is it running? ({exc})"
        except requests.Timeout:
            return False, b"", f"no answer from {endpoint} within {self.timeout:.0f} s"
        if response.ok:
            return False, response.content, ""
        status = response.status_code
        return status == 503, b"", self._status_error(status, _server_message(response.text.strip()))


class KServeClient(BaseClient):
    """KServe's v1 protocol, where an ``InferenceService`` (``nltool package --target kserve``) answers:
    ``POST <url>/v1/models/<model>:predict`` with ``{"instances": [{"data": <base64 image>, options}]}``;
    the answer comes back base64-encoded in ``predictions[0]``. ``token`` is whatever KServe's ingress
    expects as a bearer token (TorchServe's own token is off behind KServe)."""

    def __init__(self, url: str, model: str = "nllinknet", token: str | None = None, timeout: float = 600.0,
                 retries: int = 3) -> None:
        super().__init__(model, token, timeout, retries)
        self.url = url.rstrip("/")
        self._requests = require("requests", "the KServe client")

    def _send(self, image: bytes, fields: dict[str, str]) -> tuple[bool, bytes, str]:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        instance = {"data": base64.b64encode(image).decode("ascii"), **fields}
        endpoint = f"{self.url}/v1/models/{self.model}:predict"
        requests = self._requests
        try:
            response = requests.post(endpoint, json={"instances": [instance]}, headers=headers, timeout=self.timeout)
        except requests.ConnectionError as exc:
            return True, b"", f"cannot reach KServe at {self.url}: is the InferenceService ready? ({exc})"
        except requests.Timeout:
            return False, b"", f"no answer from {endpoint} within {self.timeout:.0f} s"
        try:
            prediction = response.json()["predictions"][0]
        except (ValueError, KeyError, IndexError, TypeError):
            if response.ok:
                return False, b"", f"{endpoint} answered without predictions: {response.text[:200]}"
            return response.status_code == 503, b"", self._status_error(response.status_code,
                                                                        _server_message(response.text.strip()))
        if "code" in prediction and "message" in prediction:
            return False, b"", self._status_error(int(prediction["code"]), str(prediction["message"]))
        if "output_base64" in prediction:  # the summary, as TorchServe's API returns it
            return False, json.dumps(prediction).encode(), ""
        return False, base64.b64decode(prediction["data"]), ""


class GrpcClient(BaseClient):
    """TorchServe's gRPC ``Predictions``: the image as ``input['data']``, options beside it, the token
    as ``authorization: Bearer`` metadata; message limits raised for large images."""

    def __init__(self, target: str = "127.0.0.1:7070", model: str = "nllinknet", token: str | None = None,
                 timeout: float = 600.0, retries: int = 3, max_message_bytes: int = MAX_GRPC_MESSAGE) -> None:
        import grpc

        from nltool.serving.grpc_stubs import load_stubs

        super().__init__(model, token, timeout, retries)
        self.target = target
        self._grpc = grpc
        self._messages, services = load_stubs()
        options = [("grpc.max_send_message_length", max_message_bytes),
                   ("grpc.max_receive_message_length", max_message_bytes)]
        self._channel = grpc.insecure_channel(target, options=options)
        self._stub = services.InferenceAPIsServiceStub(self._channel)

    def _metadata(self) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {self.token}")] if self.token else []

    def ping(self) -> str:
        """TorchServe's health status (``Healthy``)."""
        from google.protobuf import empty_pb2

        try:
            health = self._stub.Ping(empty_pb2.Empty(), metadata=self._metadata(), timeout=self.timeout).health
        except self._grpc.RpcError as exc:
            raise ClientError(self._explain(exc)) from exc
        return str(json.loads(health).get("status", health))

    def _send(self, image: bytes, fields: dict[str, str]) -> tuple[bool, bytes, str]:
        inputs = {"data": image, **{name: value.encode() for name, value in fields.items()}}
        request = self._messages.PredictionsRequest(model_name=self.model, input=inputs)
        try:
            response = self._stub.Predictions(request, metadata=self._metadata(), timeout=self.timeout)
        except self._grpc.RpcError as exc:
            return self._retryable(exc), b"", self._explain(exc)
        error = handler_error(response.prediction)
        if error is not None:
            return False, b"", self._status_error(*error)
        return False, response.prediction, ""

    def _retryable(self, exc: Any) -> bool:
        """UNAVAILABLE: no free worker, or a server that is still starting."""
        return exc.code() == self._grpc.StatusCode.UNAVAILABLE

    def _explain(self, exc: Any) -> str:
        code, details = exc.code(), str(exc.details() or "")
        codes = self._grpc.StatusCode
        message = _server_message(details)
        if "Token Authorization failed" in details or code == codes.UNAUTHENTICATED:
            return self._status_error(401, message)
        if code == codes.NOT_FOUND or "Model not found" in details:
            return self._status_error(404, message)
        if code == codes.RESOURCE_EXHAUSTED:
            return f"the image is too large for this server or client message limit: {message}"
        if code == codes.DEADLINE_EXCEEDED:
            return f"no answer from {self.target} within {self.timeout:.0f} s"
        if code == codes.UNAVAILABLE:
            return f"cannot reach TorchServe's gRPC API at {self.target}: is it running? ({details})"
        return f"TorchServe answered {code.name}: {message}"

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()
