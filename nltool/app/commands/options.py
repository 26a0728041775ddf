"""Option types and helpers shared by the commands: one definition of each inference option, with
its default read from the settings that own it (:class:`PipelineConfig` and the core's tables)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from nltool.inference.config import OUTPUT_FORMATS, TTA_MODES, PipelineConfig
from nltool.inference.selection import BACKENDS, PRECISION_OPTIONS
from nltool.models.archs import ARCHS, PAIRWISE_FUNCTIONS

Arch = Enum("Arch", {name.replace("-", "_"): name for name in ARCHS}, type=str)  # type: ignore[misc]
PairwiseOpt = Enum("PairwiseOpt", {name: name for name in PAIRWISE_FUNCTIONS}, type=str)  # type: ignore[misc]
TTAOpt = Enum("TTAOpt", {name: name for name in TTA_MODES}, type=str)  # type: ignore[misc]
FormatOpt = Enum("FormatOpt", {name: name for name in OUTPUT_FORMATS}, type=str)  # type: ignore[misc]
BackendOpt = Enum("BackendOpt", {name: name for name in BACKENDS}, type=str)  # type: ignore[misc]
PrecisionOpt = Enum("PrecisionOpt", {name: name for name in PRECISION_OPTIONS}, type=str)  # type: ignore[misc]
DEFAULTS = PipelineConfig()
"""The pipeline's defaults, which every inference command's option defaults are read from."""
DEFAULT_TTA = TTAOpt(DEFAULTS.tta)
DEFAULT_SCALES = ",".join(map(str, DEFAULTS.scales))
DEFAULT_FORMAT = FormatOpt(OUTPUT_FORMATS[0])
AUTO_BACKEND = BackendOpt("auto")
AUTO_PRECISION = PrecisionOpt("auto")

# Inference options shared by predict, evaluate, package and client (one definition each).
TileOpt = Annotated[int, typer.Option(help="Tile side in pixels (multiple of 32); the training size is 1024.")]
OverlapOpt = Annotated[int, typer.Option(help="Overlap between neighbouring tiles in pixels (at most tile/2).")]
TTAOption = Annotated[TTAOpt, typer.Option("--tta", help="Test-time augmentation: none, flip (4 flips) or d4 "
                                                      "(the paper's 8 flips/rotations).")]
ScalesOpt = Annotated[str, typer.Option(help="Multi-scale testing, e.g. '0.75,1.0,1.25' (comma or space separated).")]
ThresholdOpt = Annotated[float, typer.Option(help="Road where the averaged probability is above this (0-1).")]
BatchOpt = Annotated[int, typer.Option("--batch-size", help="Tiles per backend call.")]
MaxPixelsOpt = Annotated[int, typer.Option("--max-pixels", help="Refuse images with more pixels than this.")]
DeviceOpt = Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N (PyTorch and TensorRT backends).")]
BackendOption = Annotated[BackendOpt, typer.Option("--backend", help="What runs the model: auto (the fastest "
                          "installed for the model file and precision; the choice is printed), torch (.pt/.th), "
                          "onnxruntime (.onnx), openvino (.onnx/.xml, CPU; the [openvino] extra) or tensorrt "
                          "(.plan, CUDA).")]
CompileOpt = Annotated[bool, typer.Option("--compile", help="Checkpoints (--backend torch): run the model "
                       "through torch.compile. The first run per tile shape compiles (about a minute for NL34 on "
                       "2 cores; cached in ~/.cache/nltool/torch-inductor, seconds afterwards), then 1.1-1.3× "
                       "faster than eager fp32.")]
PrecisionOption = Annotated[PrecisionOpt, typer.Option("--precision", help="auto: the model file's own (fp32, or "
                            "int8 for an INT8 export) - masks as exported; bf16: CPUs with AVX512-BF16/AMX "
                            "(openvino, torch); fp16: CUDA (torch); int8: an INT8 model file.")]
ArchOpt = Annotated[
    Arch | None, typer.Option(help="Arch of a raw state dict (authors' .th); nltool checkpoints record it.")
]
PairwiseOption = Annotated[
    PairwiseOpt | None, typer.Option(help="Pairwise function of a raw state dict (default embedded_gaussian).")
]


ModelOpt = Annotated[Path, typer.Option(help="Checkpoint (.pt/.th), ONNX file or TensorRT .plan.")]
VectorsOpt = Enum("VectorsOpt", {name: name for name in ("geojson", "gpkg")}, type=str)  # type: ignore[misc]
PixelSizeOpt = Annotated[float, typer.Option("--pixel-size", min=0.01, help="Metres per pixel of images without "
                                             "georeferencing (road-network thresholds and lengths are in metres).")]


def pipeline_config(*, tile: int, overlap: int, tta: TTAOpt, scales: str, threshold: float, batch_size: int,
                    max_pixels: int = DEFAULTS.max_pixels) -> PipelineConfig:
    """The pipeline settings the options describe (checked before any model is loaded)."""
    return PipelineConfig(tile=tile, overlap=overlap, tta=tta.value, scales=parse_numbers(scales, float, "--scales"),
                          threshold=threshold, batch_size=batch_size, max_pixels=max_pixels)


def open_pipeline(model: Path, device: str, arch: Arch | None, pairwise: PairwiseOpt | None, *, tile: int,
                  overlap: int, tta: TTAOpt, scales: str, threshold: float, batch_size: int,
                  max_pixels: int = DEFAULTS.max_pixels, backend: BackendOpt = AUTO_BACKEND,
                  precision: PrecisionOpt = AUTO_PRECISION, compile_model: bool = False):
    """The inference pipeline the options describe (settings checked before the model is loaded);
    the backend chosen is printed on stderr."""
    from nltool.inference import InferencePipeline, load_backend

    config = pipeline_config(tile=tile, overlap=overlap, tta=tta, scales=scales, threshold=threshold,
                             batch_size=batch_size, max_pixels=max_pixels)
    loaded = load_backend(model, device=device, backend=backend.value, precision=precision.value,
                          compile=compile_model, arch=arch.value if arch else None,
                          pairwise=pairwise.value if pairwise else None)
    if loaded.choice is not None:
        typer.echo(f"backend: {loaded.choice.summary(model)}", err=True)
    return InferencePipeline(loaded, config)


def parse_numbers(text: str, kind: type, option: str) -> tuple:
    """'0.75,1.0 1.25' -> (0.75, 1.0, 1.25); a bad value is a usage error naming the option."""
    try:
        return tuple(kind(part) for part in text.replace(",", " ").split())
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r} is not a list of numbers", param_hint=option) from exc
