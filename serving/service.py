"""What every nltool server does with one request, whatever protocol carried it: load the backend
with the served settings, run an image (encoded bytes or an RGB array) through the same pipeline
and mask writer as ``nltool predict``, and turn failures into statuses (4xx for every
:class:`~nltool.errors.NltoolError`, 500 for anything else).

The TorchServe handler and the Open Inference Protocol model (:mod:`nltool.serving.oip`) are thin
adapters over :class:`RoadService`, so their masks are byte-identical to ``predict``'s.
"""

from __future__ import annotations

import base64
import json
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from nltool.errors import ImageError, NltoolError
from nltool.imagery import ImageReader, PillowReader, open_image, output_name
from nltool.inference import InferencePipeline, load_backend
from nltool.inference.backends.base import Backend, TimedBackend
from nltool.inference.jobs import TeeSink, road_vectorizer, write_output
from nltool.inference.pipeline import ArraySink
from nltool.serving.settings import InternalError, RequestError, ServingRequest, ServingSettings, wants_summary

logger = logging.getLogger(__name__)


def load_served_backend(artifact: Path, settings: ServingSettings, device: str) -> Backend:
    """The backend a server runs ``artifact`` on, chosen from its serving settings."""
    backend = load_backend(artifact, device=device, backend=settings.backend, precision=settings.precision,
                           compile=settings.compile, arch=settings.arch,
                           pairwise=settings.pairwise,  # type: ignore[arg-type]
                           ort_tensorrt=settings.ort_tensorrt())
    described = backend.describe()
    choice = backend.choice.summary(artifact) if backend.choice else backend.name
    logger.info("nltool backend %s on %s (%s)", choice, described.get("device"), described.get("providers", "-"))
    return backend


def request_error(exc: BaseException) -> RequestError:
    """The status and message a failed request is answered with: an image too large 413, any other
    NltoolError 400 (its own message), anything else 500 (logged with its traceback)."""
    if isinstance(exc, RequestError):
        return exc
    if isinstance(exc, ImageError):
        status = 413 if "above the limit" in str(exc) or "too large" in str(exc) else 400
        return RequestError(str(exc), status)
    if isinstance(exc, NltoolError):
        return RequestError(str(exc))
    logger.error("nltool failed on a request", exc_info=exc)
    return InternalError(exc)


def array_reader(rgb: np.ndarray, name: str = "request tensor") -> ImageReader:
    """An H×W×3 uint8 array sent as a tensor, read like a decoded image."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise RequestError(f"{name} must be uint8 H×W×3 RGB; got {rgb.dtype} {list(rgb.shape)}")
    return PillowReader(Image.fromarray(rgb, mode="RGB"), name)


@dataclass
class Prediction:
    """One answered image: the encoded answer in ``fmt`` (mask PNG/TIFF, probability PNG, or the
    GeoJSON road network), its summary, and the float probability map when it was asked for."""

    answer: bytes
    fmt: str
    summary: dict[str, Any]
    probability: np.ndarray | None = None


class RoadService:
    """One loaded backend serving requests with the served settings (and each request's overrides)."""

    def __init__(self, backend: Backend, settings: ServingSettings) -> None:
        self.backend, self.settings = backend, settings

    def predict(self, source: bytes | np.ndarray, options: dict[str, str] | None = None, *,
                keep_probability: bool = False) -> Prediction:
        """Answer one image (encoded file bytes or an RGB array) as ``nltool predict`` would write it;
        raises :class:`NltoolError` for bad input or options."""
        config, fmt = self.settings.for_request(options)
        backend = TimedBackend(self.backend)
        pipeline = InferencePipeline(backend, config)
        started = time.perf_counter()
        opened = (open_image(source, max_pixels=config.max_pixels) if isinstance(source, bytes)
                  else array_reader(source))
        with opened as reader, tempfile.TemporaryDirectory() as tmp:
            decoded = time.perf_counter()
            mask_format = "png" if fmt == "geojson" else fmt
            path = Path(tmp) / output_name(Path("request"), mask_format)  # type: ignore[arg-type]
            vectorizer = road_vectorizer(pipeline, reader) if fmt == "geojson" else None
            probability = ArraySink(reader.height, reader.width) if keep_probability else None
            sinks = [sink for sink in (vectorizer, probability) if sink is not None]
            also = None if not sinks else sinks[0] if len(sinks) == 1 else TeeSink(*sinks)
            writer = write_output(pipeline, reader, path, mask_format, also=also)  # type: ignore[arg-type]
            answer = (path.read_bytes() if vectorizer is None
                      else json.dumps(vectorizer.finish().to_geojson()).encode())
        total = time.perf_counter() - started
        work = total - (decoded - started)
        summary = {
            "width": reader.width, "height": reader.height, "format": fmt,
            "road_fraction": writer.road_fraction, "tiles": pipeline.num_tiles(reader.height, reader.width),
            "backend_images": backend.images, "tta": config.tta, "threshold": config.threshold,
            "seconds": {"decode": decoded - started, "backend": backend.seconds, "encode": writer.encode_seconds,
                        "tiling": work - backend.seconds - writer.encode_seconds, "handler": total},
        }
        return Prediction(answer, fmt, summary, None if probability is None else probability.prob)

    def serve(self, request: ServingRequest) -> None:
        """Fill ``request``'s answer, format and summary (the answer replaced by the JSON summary
        carrying it in base64 when the request asked for ``summary``), or its error."""
        if request.error is not None:
            return
        try:
            want_summary = wants_summary(request.options)
            prediction = self.predict(request.image, request.options)  # type: ignore[arg-type]
        except Exception as exc:  # answered with a status; the server keeps serving
            request.error = request_error(exc)
            return
        request.answer, request.fmt, request.summary = prediction.answer, prediction.fmt, prediction.summary
        if want_summary:
            request.summary["output_base64"] = base64.b64encode(prediction.answer).decode("ascii")
            request.answer, request.fmt = json.dumps(request.summary).encode(), "json"
