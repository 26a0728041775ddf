"""``nltool serve``: road masks over the Open Inference Protocol (KServe v2, REST and gRPC) and
KServe's v1 ``:predict``, from a ``kserve.Model`` hosted by a ``kserve.ModelServer``.

The model is a thin adapter over :class:`~nltool.serving.service.RoadService` (the pipeline and mask
writer of ``nltool predict``): input ``image`` is BYTES ``[N]`` (encoded image files) or UINT8
``[N, H, W, 3]``; outputs are ``mask`` (BYTES: the answer file in the request's ``format``, byte-identical
to ``predict``'s; UINT8 ``[N, H, W]`` 255/0 for array inputs), ``probability`` (FP32 ``[N, H, W]``),
``geojson`` (BYTES: the road network) and ``summary`` (BYTES: JSON per image). Request ``parameters``
carry ``tta``, ``threshold``, ``format`` and ``summary`` (strings, as TorchServe's options).

KServe's own servers listen on every interface; this one binds ``host`` (127.0.0.1 by default) for
REST and gRPC alike, checks an optional bearer token on every route but the health probes, refuses
request bodies above the size limit of the served settings (413), and answers every
:class:`~nltool.errors.NltoolError` with its 4xx status and one-line message (gRPC: INVALID_ARGUMENT,
RESOURCE_EXHAUSTED for 413), a failure of nltool itself with 500 (gRPC: INTERNAL). No route writes files.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import os
import sys
import uuid
from collections.abc import Awaitable, Callable, Sequence
from concurrent import futures
from pathlib import Path
from types import ModuleType
from typing import Any, cast

import numpy as np

from nltool.errors import NltoolError
from nltool.imagery import threshold_mask
from nltool.optional import require
from nltool.serving.oip_options import ServeOptions
from nltool.serving.package import check_artifact, size_limits
from nltool.serving.service import Prediction, RoadService, load_served_backend, request_error
from nltool.serving.settings import (
    REQUEST_OPTIONS,
    RequestError,
    ServingRequest,
    ServingSettings,
    instance_answer,
    instance_request,
    wants_summary,
)

INPUT = "image"
OUTPUTS = ("mask", "probability", "geojson", "summary")
OPEN_PATHS = ("/v2/health/live", "/v2/health/ready")
"""REST routes answered without the token: what Kubernetes' probes call."""
OPEN_METHODS = ("ServerLive", "ServerReady")
"""The gRPC methods answered without the token."""
MAX_HEADER_BYTES = 64 * 1024
"""Requests with more header bytes than this are refused (431): the image goes in the body."""
ASGIApp = Callable[[dict, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]]


def import_kserve() -> ModuleType:
    """``kserve``, imported without letting its module-level argument parser read nltool's command line."""
    saved, sys.argv = sys.argv, sys.argv[:1]
    try:
        return require("kserve", "nltool serve")
    finally:
        sys.argv = saved


def read_token_file(path: Path) -> str:
    """The bearer token in ``path`` (its text, stripped); an empty or missing file is an error."""
    try:
        token = path.read_text().strip()
    except OSError as exc:
        raise NltoolError(f"cannot read the token file {path}: {exc}") from exc
    if not token:
        raise NltoolError(f"token file {path} is empty: write the bearer token clients must send into it")
    return token


def _text_parameters(parameters: Any) -> dict[str, str]:
    """Request ``parameters`` (REST JSON or gRPC InferParameters) -> the options the pipeline reads."""
    from kserve.protocol.infer_type import to_http_parameters

    values = to_http_parameters(parameters) if parameters else {}
    options = {}
    for name in REQUEST_OPTIONS:
        value = values.get(name)
        if value is not None:
            options[name] = str(value).lower() if isinstance(value, bool) else str(value)
    return options


def _image_batch(request: Any) -> np.ndarray:
    """The ``image`` input as an array: object bytes ``[N]`` or uint8 ``[N, H, W, 3]``, or a 400."""
    inputs = {item.name: item for item in request.inputs}
    if INPUT not in inputs or len(inputs) != 1:
        raise RequestError(f"send one input named {INPUT!r} (BYTES [N] image files or UINT8 [N,H,W,3]); "
                           f"got {sorted(inputs) or 'none'}")
    tensor = inputs[INPUT]
    datatype, shape = tensor.datatype, list(tensor.shape)
    if not ((datatype == "BYTES" and len(shape) == 1) or (datatype == "UINT8" and len(shape) == 4 and shape[3] == 3)):
        raise RequestError(f"input {INPUT!r} must be BYTES [N] (encoded image files) or UINT8 [N,H,W,3] (RGB); "
                           f"got {datatype} {shape}")
    try:
        batch = tensor.as_numpy()
    except Exception as exc:  # data that does not fill the declared shape, undecodable BYTES
        raise RequestError(f"input {INPUT!r} does not hold {datatype} {shape}: {exc}") from exc
    if batch.ndim != len(shape) or batch.shape[0] == 0:
        raise RequestError(f"input {INPUT!r} holds no image")
    return batch


def binary_request(body: bytes, json_length: int, model_name: str) -> Any:
    """An OIP REST request with the binary tensor extension as a ``kserve`` InferRequest, each binary
    input keeping its raw bytes (KServe's own decoder re-encodes BYTES inputs as UTF-8 text, which
    image files are not); a header or tensor that does not fit the body is a 400."""
    from kserve.protocol.infer_type import InferInput, InferRequest, RequestedOutput

    if json_length > len(body):
        raise RequestError(f"Inference-Header-Content-Length {json_length} is beyond the body of {len(body)} bytes")
    try:
        header = json.loads(body[:json_length])
        offset, inputs = json_length, []
        for item in header["inputs"]:
            parameters = item.get("parameters") or {}
            tensor = InferInput(item["name"], list(item["shape"]), item["datatype"], item.get("data"), parameters)
            size = parameters.get("binary_data_size")
            if size is not None:
                if offset + int(size) > len(body):
                    raise RequestError(f"input {item['name']!r} is truncated: it declares {size} bytes, the body "
                                       f"holds {len(body) - offset} more")
                tensor._raw_data, offset = body[offset:offset + int(size)], offset + int(size)
            elif item.get("data") is None:
                raise RequestError(f"input {item['name']!r} has neither 'data' nor 'binary_data_size'")
            inputs.append(tensor)
        outputs = [RequestedOutput(out["name"], out.get("parameters")) for out in header.get("outputs") or []]
    except RequestError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise RequestError(f"not an Open Inference Protocol request header ({type(exc).__name__}: {exc})") from exc
    if offset != len(body):
        raise RequestError(f"the body holds {len(body) - offset} bytes beyond its declared tensors")
    return InferRequest(model_name, inputs, request_id=header.get("id"), parameters=header.get("parameters"),
                        request_outputs=outputs or None)


def _outputs(request: Any, options: dict[str, str]) -> list[str]:
    """The outputs asked for: the requested ones, else ``mask`` (``geojson`` for format geojson) and
    ``summary`` when the request's ``summary`` parameter is true."""
    if request.request_outputs:
        names = [output.name for output in request.request_outputs]
        unknown = sorted(set(names) - set(OUTPUTS))
        if unknown:
            raise RequestError(f"unknown output {unknown[0]!r}; this model answers {', '.join(OUTPUTS)}")
        if "mask" in names and "geojson" in names:
            raise RequestError("ask for 'mask' or 'geojson' in one request, not both")
        return names
    names = ["geojson" if options.get("format") == "geojson" else "mask"]
    return [*names, "summary"] if wants_summary(options) else names


def _image_bytes(element: Any) -> bytes:
    """One BYTES element: the file's bytes (binary tensors, gRPC), or base64 text (JSON requests)."""
    if isinstance(element, bytes):
        return element
    try:
        return base64.b64decode(str(element), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RequestError(f"a BYTES {INPUT!r} element sent as JSON text must be the image file in base64") from exc


def _binary(values: Sequence[bytes]) -> np.ndarray:
    array = np.empty(len(values), dtype=np.object_)
    array[:] = list(values)
    return array


def road_model(name: str, services: list[RoadService]) -> Any:
    """The ``kserve.Model`` serving ``services`` as ``name`` (kserve is imported only when a server starts)."""
    model_base: Any = import_kserve().Model
    from kserve.protocol.infer_type import InferOutput, InferResponse

    class NLLinkNetModel(model_base):
        """Road masks for images of any size; ``services`` are the model instances taking turns."""

        def __init__(self) -> None:
            super().__init__(name)
            self.settings = services[0].settings
            self._idle: asyncio.Queue[RoadService] | None = None
            self.ready = True

        def get_input_types(self) -> list[dict[str, Any]]:
            return [{"name": INPUT, "datatype": "BYTES", "shape": [-1]},
                    {"name": INPUT, "datatype": "UINT8", "shape": [-1, -1, -1, 3]}]

        def get_output_types(self) -> list[dict[str, Any]]:
            return [{"name": "mask", "datatype": "BYTES", "shape": [-1]},
                    {"name": "mask", "datatype": "UINT8", "shape": [-1, -1, -1]},
                    {"name": "probability", "datatype": "FP32", "shape": [-1, -1, -1]},
                    {"name": "geojson", "datatype": "BYTES", "shape": [-1]},
                    {"name": "summary", "datatype": "BYTES", "shape": [-1]}]

        async def _run(self, job: Callable[[RoadService], Any]) -> Any:
            """``job`` on the first free model instance, in a worker thread."""
            if self._idle is None:
                self._idle = asyncio.Queue()
                for service in services:
                    self._idle.put_nowait(service)
            service = await self._idle.get()
            try:
                return await asyncio.get_running_loop().run_in_executor(None, job, service)
            finally:
                self._idle.put_nowait(service)

        async def predict(self, payload: Any, headers: dict[str, str] | None = None,
                          response_headers: dict[str, str] | None = None) -> Any:
            if isinstance(payload, dict):
                return await self._predict_v1(payload)
            if not hasattr(payload, "inputs"):
                raise RequestError("send a JSON body: v1 {\"instances\": [...]} or an Open Inference "
                                   "Protocol request to /v2/models/<name>/infer")
            return await self._predict_v2(payload)

        async def _predict_v1(self, payload: dict[str, Any]) -> dict[str, Any]:
            instances = payload.get("instances")
            if not isinstance(instances, list) or not instances:
                raise RequestError("send {\"instances\": [{\"data\": \"<base64 image>\", ...options}]}")
            requests = [instance_request(instance) for instance in instances]

            def answer(service: RoadService) -> None:
                for request in requests:
                    service.serve(request)

            await self._run(answer)
            if len(requests) == 1 and requests[0].error is not None:
                raise requests[0].error
            return {"predictions": [instance_answer(request) for request in requests]}

        async def _predict_v2(self, request: Any) -> Any:
            try:
                options = _text_parameters(request.parameters)
                wanted = _outputs(request, options)
                batch = _image_batch(request)
                if "geojson" in wanted:
                    options["format"] = "geojson"
                keep = "probability" in wanted or (batch.dtype == np.uint8 and "mask" in wanted)
                images = [_image_bytes(image) for image in batch] if batch.dtype == np.object_ else list(batch)
                predictions: list[Prediction] = await self._run(
                    lambda service: [service.predict(image, options, keep_probability=keep) for image in images])
            except Exception as exc:
                raise request_error(exc) from exc
            outputs = [self._output(output, batch, predictions) for output in wanted]
            binary = request.from_grpc or request.use_binary_outputs or any(
                out.datatype == "BYTES" for out in outputs) or any(
                bool(out.binary_data) for out in request.request_outputs or [])
            return InferResponse(response_id=request.id or str(uuid.uuid4()), model_name=name,
                                 infer_outputs=outputs, use_binary_outputs=binary)

        def _output(self, output: str, batch: np.ndarray, predictions: list[Prediction]) -> Any:
            if output == "summary":
                data = _binary([json.dumps(p.summary).encode() for p in predictions])
            elif output == "probability":
                data = np.stack([cast(np.ndarray, p.probability) for p in predictions]).astype(np.float32)
            elif output == "mask" and batch.dtype == np.uint8:
                data = np.stack([threshold_mask(cast(np.ndarray, p.probability), p.summary["threshold"])
                                 for p in predictions])
            else:  # the answer file: mask/probability PNG, TIFF, or the GeoJSON road network
                data = _binary([p.answer for p in predictions])
            datatype = {np.dtype(np.float32): "FP32", np.dtype(np.uint8): "UINT8"}.get(data.dtype, "BYTES")
            tensor = InferOutput(name=output, shape=list(data.shape), datatype=datatype)
            tensor.set_data_from_numpy(data, binary_data=True)
            return tensor

    return NLLinkNetModel()


class GuardMiddleware:
    """ASGI middleware in front of KServe's app: the bearer token on every route but the health
    probes (401), and the header (431) and body (413) size limits, before any body reaches the model."""

    def __init__(self, app: ASGIApp, token: str | None, max_body: int) -> None:
        self.app, self.token, self.max_body = app, token, max_body

    async def __call__(self, scope: dict, receive: Callable[[], Awaitable[dict]],
                       send: Callable[[dict], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if sum(len(key) + len(value) for key, value in scope["headers"]) > MAX_HEADER_BYTES:
            await _refuse(send, 431, f"request headers above {MAX_HEADER_BYTES:,} bytes")
            return
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
        if self.token and scope["path"] not in OPEN_PATHS and not authorized(headers.get("authorization"), self.token):
            await _refuse(send, 401, "missing or wrong bearer token: send 'Authorization: Bearer <token>' "
                                     "(the text of the server's --token-file)", {"www-authenticate": "Bearer"})
            return
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await _refuse(send, 413, f"request body of {length} bytes is above this server's limit of "
                                     f"{self.max_body:,} bytes (--max-pixels sets it)")
            return
        if length is None and scope.get("method") in ("POST", "PUT"):
            body, more = b"", True
            while more:  # a chunked body: read it up to the limit, then replay it
                message = await receive()
                body += message.get("body", b"")
                more = message.get("more_body", False)
                if len(body) > self.max_body:
                    await _refuse(send, 413, f"request body above this server's limit of {self.max_body:,} bytes")
                    return

            async def replay() -> dict:
                return {"type": "http.request", "body": body, "more_body": False}

            await self.app(scope, replay, send)
            return
        await self.app(scope, receive, send)


def authorized(header: str | None, token: str) -> bool:
    """Whether an ``authorization`` header (or gRPC metadata value) carries ``Bearer <token>``."""
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


async def _refuse(send: Callable[[dict], Awaitable[None]], status: int, message: str,
                  extra: dict[str, str] | None = None) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(key.encode(), value.encode()) for key, value in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def grpc_status(error: RequestError) -> Any:
    """The gRPC status of an answered error: 400 INVALID_ARGUMENT, 413 RESOURCE_EXHAUSTED, 500 INTERNAL."""
    import grpc

    codes = {413: grpc.StatusCode.RESOURCE_EXHAUSTED, 500: grpc.StatusCode.INTERNAL}
    return codes.get(error.status, grpc.StatusCode.INVALID_ARGUMENT)


def build_server(options: ServeOptions, settings: ServingSettings, max_body: int) -> Any:
    """A ``kserve.ModelServer`` whose REST and gRPC servers bind ``options.host``, with the token and
    size checks and nltool's error statuses (kserve imported here, not at module import)."""
    server_base: Any = import_kserve().ModelServer
    import grpc
    from grpc import aio
    from kserve.constants.constants import FASTAPI_APP_IMPORT_STRING, INFERENCE_CONTENT_LENGTH_HEADER
    from kserve.model_server import app
    from kserve.protocol.dataplane import DataPlane
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc
    from kserve.protocol.grpc.interceptors import ExceptionToStatusInterceptor
    from kserve.protocol.grpc.server import GRPCServer
    from kserve.protocol.grpc.servicer import InferenceServicer
    from kserve.protocol.rest.server import RESTServer
    from starlette.responses import JSONResponse

    class StatusInterceptor(ExceptionToStatusInterceptor):
        """nltool's errors as their gRPC statuses with the one-line message; the rest as kserve maps them."""

        async def handle_exception(self, ex: Exception, request_or_iterator: Any, context: Any,
                                   method_name: str) -> None:
            if isinstance(ex, RequestError):
                await context.abort(grpc_status(ex), str(ex))
            await super().handle_exception(ex, request_or_iterator, context, method_name)

    class TokenInterceptor(aio.ServerInterceptor):
        """UNAUTHENTICATED for every method but the health checks without ``authorization: Bearer <token>``."""

        async def intercept_service(self, continuation: Any, details: Any) -> Any:
            method = details.method.rsplit("/", 1)[-1]
            header = dict(details.invocation_metadata or ()).get("authorization")
            if method in OPEN_METHODS or authorized(header, options.token or ""):
                return await continuation(details)

            async def deny(request: Any, context: Any) -> None:
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token: send "
                                    "'authorization: Bearer <token>' metadata")

            return grpc.unary_unary_rpc_method_handler(deny)

    class LoopbackGRPCServer(GRPCServer):
        """KServe's gRPC inference service on ``options.host`` only, with the token and status interceptors."""

        async def start(self, max_workers: int) -> None:
            interceptors = ([TokenInterceptor()] if options.token else []) + [StatusInterceptor()]
            self._server = aio.server(futures.ThreadPoolExecutor(max_workers=max_workers), interceptors=interceptors,
                                      options=[("grpc.max_send_message_length", -1),
                                               ("grpc.max_receive_message_length", max_body)])
            servicer = InferenceServicer(self._data_plane, self._model_repository_extension)
            grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, self._server)
            if not self._server.add_insecure_port(f"{options.host}:{self._port}"):
                raise NltoolError(f"cannot listen on {options.host}:{self._port} (gRPC)")
            await self._server.start()
            await self._server.wait_for_termination()

    async def request_error_handler(request: Any, exc: Exception) -> JSONResponse:
        error = exc if isinstance(exc, RequestError) else request_error(exc)
        if request.url.path.startswith("/v1/"):  # as TorchServe answers behind KServe's v1 envelope
            answer = instance_answer(ServingRequest(error=error, json_answer=True))
            return JSONResponse(status_code=error.status, content={"predictions": [answer]})
        return JSONResponse(status_code=error.status, content={"error": str(error)})

    class BinaryDataPlane(DataPlane):
        """KServe's data plane, decoding binary-extension REST requests with :func:`binary_request`."""

        def decode_inference_request(self, body: Any, headers: dict[str, str], model_name: str) -> Any:
            if not isinstance(body, bytes):
                return super().decode_inference_request(body, headers, model_name)
            length = headers.get(INFERENCE_CONTENT_LENGTH_HEADER, "")
            if not length.isdigit():
                raise RequestError(f"a binary request needs an {INFERENCE_CONTENT_LENGTH_HEADER} header "
                                   f"(the length of its JSON part); got {length or 'none'}")
            return binary_request(body, int(length), model_name)

    class LoopbackModelServer(server_base):
        """KServe's ModelServer with both servers bound to ``options.host`` (KServe binds all interfaces)."""

        def start(self, models: list[Any]) -> None:
            self.dataplane = BinaryDataPlane(model_registry=self.registered_models)
            self._register_and_check_atleast_one_model_is_ready(models)
            app.add_middleware(GuardMiddleware, token=options.token, max_body=max_body)
            app.add_exception_handler(RequestError, request_error_handler)
            self._rest_server = RESTServer(FASTAPI_APP_IMPORT_STRING, self.dataplane, self.model_repository_extension,
                                           self.http_port, grace_period=self.grace_period,
                                           timeout_keep_alive=self.timeout_keep_alive)
            self._rest_server.config.host = options.host
            self._grpc_server = LoopbackGRPCServer(self.grpc_port, self.dataplane, self.model_repository_extension,
                                                   kwargs={}, grace_period=5)
            self.setup_event_loop()
            asyncio.run(self._serve())

        async def _serve(self) -> None:
            grpc_task = asyncio.create_task(self._grpc_server.start(self.max_threads))
            try:
                await self._rest_server.start()  # until SIGINT/SIGTERM (uvicorn's handlers)
            finally:
                await self._grpc_server.stop()
                await asyncio.gather(grpc_task, return_exceptions=True)

    return LoopbackModelServer(http_port=options.http_port, grpc_port=options.grpc_port, workers=1,
                               enable_docs_url=False, enable_latency_logging=False, grace_period=5)


def serve(artifact: Path, settings: ServingSettings, options: ServeOptions) -> None:
    """Load ``options.workers`` model instances of ``artifact``, then serve them until interrupted."""
    if options.workers < 1:
        raise NltoolError(f"--workers must be at least 1; got {options.workers}")
    check_artifact(artifact, settings)
    server = build_server(options, settings, size_limits(settings)[0])
    from nltool.devices import resolve_device
    from nltool.inference.selection import CHECKPOINT_SUFFIXES

    device = str(resolve_device(options.device))
    if device == "cpu" and artifact.suffix.lower() in CHECKPOINT_SUFFIXES:  # instances share the cores
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // options.workers))
    services = [RoadService(load_served_backend(artifact, settings, device), settings)
                for _ in range(options.workers)]
    server.start([road_model(options.name, services)])

