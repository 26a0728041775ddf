"""The ``nltool:`` section of a served model's model-config.yaml, and per-request option overrides."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from nltool.errors import NltoolError
from nltool.imagery import DEFAULT_MAX_PIXELS, OUTPUT_FORMATS
from nltool.inference import TTA_MODES, PipelineConfig

OVERRIDABLE = ("tta", "threshold", "format")
"""Options a request may set (multipart fields, or ``X-Nltool-<Option>`` headers)."""


class RequestError(NltoolError):
    """A request the server answers with a 4xx: undecodable bytes, a bad option, too many pixels."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ServingSettings:
    """Pipeline settings plus what requests may change: written by ``nltool package``, read by the handler."""

    tile: int = 1024
    overlap: int = 128
    tta: str = "none"
    scales: tuple[float, ...] = (1.0,)
    threshold: float = 0.5
    batch_size: int = 1
    max_pixels: int = DEFAULT_MAX_PIXELS
    format: str = "png"
    allowed_tta: tuple[str, ...] = field(default=TTA_MODES)
    arch: str | None = None
    pairwise: str | None = None

    def pipeline(self, overrides: dict[str, str] | None = None) -> tuple[PipelineConfig, str]:
        """The pipeline config and output format for one request, with its overrides checked."""
        options = dict(overrides or {})
        tta = options.get("tta", self.tta)
        if tta not in self.allowed_tta:
            raise RequestError(f"tta {tta!r} is not allowed here; choose one of {', '.join(self.allowed_tta)}")
        try:
            threshold = float(options.get("threshold", self.threshold))
        except ValueError as exc:
            raise RequestError(f"threshold {options['threshold']!r} is not a number") from exc
        if not 0.0 <= threshold < 1.0:
            raise RequestError(f"threshold must be in [0, 1), got {threshold}")
        fmt = options.get("format", self.format)
        if fmt not in OUTPUT_FORMATS:
            raise RequestError(f"format {fmt!r} is unknown; choose one of {', '.join(OUTPUT_FORMATS)}")
        config = PipelineConfig(tile=self.tile, overlap=self.overlap, tta=tta, scales=self.scales,  # type: ignore[arg-type]
                                threshold=threshold, batch_size=self.batch_size, max_pixels=self.max_pixels)
        return config, fmt

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["scales"], data["allowed_tta"] = list(self.scales), list(self.allowed_tta)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ServingSettings:
        data = dict(data or {})
        for key in ("scales", "allowed_tta"):
            if key in data:
                data[key] = tuple(data[key])
        settings = replace(cls(), **data)
        settings.pipeline()  # validate the defaults once, at load time
        return settings


@dataclass
class ServingRequest:
    """One decoded request, or the error that stopped it (kept out of handler.py: TorchServe wants one class there)."""

    image: bytes | None = None
    options: dict[str, str] | None = None
    error: RequestError | None = None
    answer: bytes | None = None
    fmt: str = "png"
