"""The ``nltool:`` section of a served model's model-config.yaml, and per-request option overrides."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

from nltool.cache import cache_dir
from nltool.errors import InferenceConfigError, NltoolError
from nltool.inference import TTA_MODES, PipelineConfig
from nltool.inference.backends.onnxruntime_backend import TensorRTProviderSettings
from nltool.inference.config import OUTPUT_FORMATS, TTAMode
from nltool.inference.selection import check_names

SERVED_FORMATS: tuple[str, ...] = (*OUTPUT_FORMATS, "geojson")
"""Answer formats: the mask encodings, or ``geojson``: the road network (WGS 84 for GeoTIFF requests)."""
OVERRIDABLE = ("tta", "threshold", "format")
"""Pipeline settings a request may override, within the limits of the served config."""
REQUEST_OPTIONS = (*OVERRIDABLE, "summary")
"""Everything a request may set: multipart/gRPC input fields, or ``X-Nltool-<Option>`` headers."""
CONTENT_TYPES = {"png": "image/png", "prob": "image/png", "tif": "image/tiff", "json": "application/json",
                 "geojson": "application/geo+json"}
"""Content type of each answer format (``json``: the summary)."""
FLAGS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


class RequestError(NltoolError):
    """A request the server answers with an error status (4xx: undecodable bytes, a bad option, too
    many pixels) and a JSON body carrying the message."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class InternalError(RequestError):
    """A failure of nltool itself on one request (not the client's doing): answered 500, logged."""

    def __init__(self, exc: BaseException) -> None:
        super().__init__(f"nltool failed on this request ({type(exc).__name__}: {exc}); the server's model "
                         "log has the traceback: please report it with the image", 500)


def wants_summary(options: dict[str, str] | None) -> bool:
    """Whether a request asked for the JSON summary instead of the bare image."""
    value = (options or {}).get("summary", "false").strip().lower()
    if value not in FLAGS:
        raise RequestError(f"summary {value!r} is not a yes/no value; send true or false")
    return FLAGS[value]


@dataclass(frozen=True)
class ServingSettings:
    """The pipeline a model is served with, plus what requests may change: written by
    ``nltool package`` (flattened into model-config.yaml's ``nltool:`` section), read by the handler."""

    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    format: str = "png"
    allowed_tta: tuple[str, ...] = TTA_MODES
    arch: str | None = None
    pairwise: str | None = None
    backend: str = "auto"
    """``--backend``: what runs the model in each worker (auto: the fastest installed there)."""
    precision: str = "auto"
    """``--precision``: auto is the model file's own."""
    compile: bool = False
    """``--compile``: checkpoints run through ``torch.compile`` (kernels cached per worker host)."""
    onnx_tensorrt: bool = False
    """ONNX artifacts on GPU workers run on onnxruntime's TensorRT provider (else CUDA, then CPU)."""
    tensorrt_cache: str | None = None
    """Where that provider caches its engines; None: ``<nltool cache>/onnxruntime-tensorrt``."""

    def ort_tensorrt(self) -> TensorRTProviderSettings | None:
        """The TensorRT provider's settings when opted in: its engine cache, and the tile shapes this
        pipeline sends as its profile, so engines are built once per worker start, not per request."""
        if not self.onnx_tensorrt:
            return None
        folder = Path(self.tensorrt_cache) if self.tensorrt_cache else cache_dir() / "onnxruntime-tensorrt"
        return TensorRTProviderSettings.for_pipeline(self.pipeline, folder)

    def for_request(self, overrides: dict[str, str] | None = None) -> tuple[PipelineConfig, str]:
        """The pipeline config and output format for one request, with its overrides checked."""
        options = dict(overrides or {})
        tta = options.get("tta", self.pipeline.tta)
        if tta not in self.allowed_tta:
            raise RequestError(f"tta {tta!r} is not allowed here; choose one of {', '.join(self.allowed_tta)}")
        try:
            threshold = float(options.get("threshold", self.pipeline.threshold))
        except ValueError as exc:
            raise RequestError(f"threshold {options['threshold']!r} is not a number") from exc
        fmt = options.get("format", self.format)
        if fmt not in SERVED_FORMATS:
            raise RequestError(f"format {fmt!r} is unknown; choose one of {', '.join(SERVED_FORMATS)}")
        try:
            return replace(self.pipeline, tta=cast(TTAMode, tta), threshold=threshold), fmt
        except InferenceConfigError as exc:
            raise RequestError(str(exc)) from exc

    def to_dict(self) -> dict[str, Any]:
        """One flat mapping: the pipeline's settings beside the serving ones."""
        return {**self.pipeline.to_dict(), "format": self.format, "allowed_tta": list(self.allowed_tta),
                "arch": self.arch, "pairwise": self.pairwise, "backend": self.backend, "precision": self.precision,
                "compile": self.compile,
                "onnx_tensorrt": self.onnx_tensorrt,
                "tensorrt_cache": self.tensorrt_cache}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ServingSettings:
        """Inverse of :meth:`to_dict`; bad values raise as they would on the command line."""
        data = dict(data or {})
        pipeline_keys = PipelineConfig.__dataclass_fields__.keys()
        values: dict[str, Any] = {k: tuple(v) if k == "scales" else v for k, v in data.items() if k in pipeline_keys}
        pipeline = PipelineConfig(**values)
        rest = {k: v for k, v in data.items() if k not in pipeline_keys}
        if "allowed_tta" in rest:
            rest["allowed_tta"] = tuple(rest["allowed_tta"])
        settings = cls(pipeline=pipeline, **rest)
        check_names(settings.backend, settings.precision)
        settings.for_request()  # the defaults must be a valid request
        return settings


@dataclass
class ServingRequest:
    """One decoded request, or the error that stopped it (kept out of handler.py: TorchServe wants one class there)."""

    image: bytes | None = None
    options: dict[str, str] | None = None
    error: RequestError | None = None
    answer: bytes | None = None
    fmt: str = "png"
    summary: dict[str, Any] | None = None
    """Size, road fraction, tiles and seconds per stage of an answered request: always filled (the
    metrics come from it), sent to the client only when it asked for ``summary``."""
    json_answer: bool = False
    """The request came as a KServe v1 instance (base64 image in JSON): answer with JSON too."""


def decode_instance(data: str, options: dict[str, str]) -> ServingRequest:
    """A KServe v1 instance ``{"data": "<base64 image>", ...options}`` as a request (or its error)."""
    try:
        image = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        error = RequestError("instance 'data' is not base64: send {\"instances\": [{\"data\": \"<base64 image>\"}]}")
        return ServingRequest(error=error, json_answer=True)
    if not image:
        return ServingRequest(error=RequestError("empty instance 'data': send the image, base64-encoded"),
                              json_answer=True)
    return ServingRequest(image=image, options=options, json_answer=True)


def instance_request(instance: Any) -> ServingRequest:
    """One entry of a KServe v1 body's ``instances`` (``{"data": "<base64 image>", ...options}``) as a request."""
    if not isinstance(instance, dict) or not isinstance(instance.get("data"), str):
        error = RequestError("each instance must be {\"data\": \"<base64 image>\"} plus options (tta, threshold, "
                             "format, summary)")
        return ServingRequest(error=error, json_answer=True)
    options = {name: str(instance[name]) for name in REQUEST_OPTIONS if instance.get(name) is not None}
    return decode_instance(instance["data"], options)


def instance_answer(request: ServingRequest) -> dict[str, Any]:
    """A KServe v1 prediction: the answer base64-encoded with its format (and the summary, if asked
    for), or the error as ``{"code", "type", "message"}``."""
    if request.error is not None:
        return {"code": request.error.status, "type": type(request.error).__name__, "message": str(request.error)}
    if request.fmt == "json":  # asked for the summary: it already carries the answer as output_base64
        return json.loads(request.answer or b"{}")
    return {"data": base64.b64encode(request.answer or b"").decode("ascii"), "format": request.fmt,
            "content_type": CONTENT_TYPES[request.fmt]}
