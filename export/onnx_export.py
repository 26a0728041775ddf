"""Checkpoint -> ONNX artifact: ``image`` (N×3×H×W RGB 0-255) in, ``prob`` (N×1×H×W) out.

Normalization and the sigmoid are inside the graph (:class:`ProbabilityModel`). N, H and W are
dynamic, with H and W multiples of 32 (torch.export's derived dims ``32*h``, the form that lets
the ResNet's strided layers export without divisibility guard failures). The graph is checked
with ``onnx.checker`` and strict shape inference and carries nltool's metadata.
"""

from __future__ import annotations

import os
from pathlib import Path

import onnx
import torch
from torch.export import Dim

from nltool import __version__
from nltool.errors import NltoolError
from nltool.fileio import atomic_path
from nltool.inference.backends.onnxruntime_backend import INPUT_NAME, OUTPUT_NAME
from nltool.models import NLLinkNet
from nltool.models.probability import ProbabilityModel

DEFAULT_OPSET = 18
"""ONNX opset: >= 13 for per-channel QDQ, within what onnxruntime and TensorRT 10/11 parse (<= 25)."""
MAX_SIDE = 32 * 1024
"""Largest H or W the exported graph declares (32 × 1024 = 32768 px; tiles are far smaller)."""


class ExportError(NltoolError):
    """An export that failed, with what failed and where."""


class Int8GateError(ExportError):
    """INT8 could not keep its masks within the gate's mask IoU of FP32; nothing was written. The FP32
    export itself was fine, so a caller may go on without INT8 (the demo does)."""


def onnx_metadata(model: NLLinkNet, source: str | None = None, source_sha256: str | None = None) -> dict[str, str]:
    """The metadata props every nltool ONNX artifact carries (DESIGN.md: arch, normalization, version)."""
    config = model.config
    norm = config.normalization
    props = {
        "nltool_version": __version__,
        "arch": config.arch,
        "pairwise": config.pairwise,
        "normalization_mean": ",".join(map(str, norm.mean)),
        "normalization_std": ",".join(map(str, norm.std)),
        "input": f"{INPUT_NAME}: float32 N×3×H×W RGB 0-255, H and W multiples of 32",
        "output": f"{OUTPUT_NAME}: float32 N×1×H×W road probability",
    }
    if source:
        props["source_checkpoint"] = source
    if source_sha256:
        props["source_checkpoint_sha256"] = source_sha256
    return props


def export_onnx(model: NLLinkNet, path: str | os.PathLike[str], *, opset: int = DEFAULT_OPSET,
                metadata: dict[str, str] | None = None) -> Path:
    """Export ``model`` (in eval mode) to ``path`` atomically; returns the path.

    Raises :class:`ExportError` if the exporter, the checker or shape inference fails.
    """
    path = Path(path)
    net = ProbabilityModel(model).eval()
    example = torch.zeros(1, 3, 64, 64)
    dynamic = {INPUT_NAME: {0: Dim.DYNAMIC, 2: 32 * Dim("h", min=1, max=MAX_SIDE // 32),
                            3: 32 * Dim("w", min=1, max=MAX_SIDE // 32)}}
    try:
        program = torch.onnx.export(net, (example,), dynamo=True, opset_version=opset, input_names=[INPUT_NAME],
                                    output_names=[OUTPUT_NAME], dynamic_shapes=dynamic, optimize=True,
                                    verbose=False)
    except Exception as exc:  # the exporter raises many internal error types
        first_line = str(exc).strip().splitlines()[0]
        raise ExportError(f"torch.onnx.export failed for {model.config.arch}: {first_line}") from exc
    if program is None:
        raise ExportError(f"torch.onnx.export returned no program for {model.config.arch}")
    proto = program.model_proto
    for key, value in (metadata or onnx_metadata(model)).items():
        proto.metadata_props.add(key=key, value=value)
    try:
        onnx.checker.check_model(proto, full_check=False)
        proto = onnx.shape_inference.infer_shapes(proto, strict_mode=True)
    except Exception as exc:  # onnx raises ValidationError / InferenceError
        raise ExportError(f"the exported graph does not check: {exc}") from exc
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        onnx.save_model(proto, tmp)
    return path
