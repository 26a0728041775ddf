"""``nltool export``: a checkpoint to ONNX (+ INT8, + TensorRT), with each artifact's parity measured."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nltool.app.commands.options import ArchOpt, PairwiseOption


def export(
    checkpoint: Annotated[Path, typer.Option(help="Checkpoint to export (nltool .pt, or an authors' .th with "
                                                  "--arch).")],
    out: Annotated[Path, typer.Option(help="Folder for model.onnx, model.int8.onnx, model.*.plan and parity.json.")],
    arch: ArchOpt = None,
    pairwise: PairwiseOption = None,
    onnx: Annotated[bool, typer.Option(help="Keep the FP32 ONNX artifact (it is always built: TensorRT and INT8 "
                                            "start from it).")] = True,
    trt: Annotated[bool, typer.Option(help="Also build TensorRT engines (needs a CUDA GPU and the [trt] "
                                           "extra).")] = False,
    fp16: Annotated[bool, typer.Option(help="Build the TensorRT engine in FP16 instead of FP32.")] = False,
    int8: Annotated[bool, typer.Option(help="Also write an INT8 QDQ ONNX (and an INT8 engine with --trt).")] = False,
    calib: Annotated[Path | None, typer.Option(help="Folder of calibration images for --int8.")] = None,
    int8_keep_float: Annotated[str, typer.Option(help="Conv groups --int8 leaves in float: auto (the fewest that "
                                                      "keep INT8 masks within 0.98 IoU of FP32, measured on held-out "
                                                      "calibration images), none, or a comma list of stem, nonlocal, "
                                                      "decoder (see docs/performance.md).")] = "auto",
    int8_engine: Annotated[str, typer.Option(help="What runs the --int8 model: onnxruntime (model.int8.onnx, QDQ) "
                                                  "or openvino (model.int8.xml: NNCF INT8 with accuracy control on "
                                                  "mask IoU vs FP32; the [openvino-int8] extra).")] = "onnxruntime",
    opset: Annotated[int, typer.Option(help="ONNX opset (17-25).", min=17, max=25)] = 18,
    min_batch: Annotated[int, typer.Option(help="TensorRT profile: smallest batch.")] = 1,
    opt_batch: Annotated[int, typer.Option(help="TensorRT profile: batch the kernels are tuned for.")] = 1,
    max_batch: Annotated[int, typer.Option(help="TensorRT profile: largest batch.")] = 4,
    min_side: Annotated[int, typer.Option(help="TensorRT profile: smallest tile side (multiple of 32).")] = 256,
    opt_side: Annotated[int, typer.Option(help="TensorRT profile: tile side the kernels are tuned for.")] = 1024,
    max_side: Annotated[int, typer.Option(help="TensorRT profile: largest tile side.")] = 1024,
    workspace_gib: Annotated[float, typer.Option("--workspace-gib", help="TensorRT builder workspace.")] = 4.0,
    device: Annotated[str, typer.Option(help="Device of the PyTorch reference for parity (cpu, cuda).")] = "cpu",
    force: Annotated[bool, typer.Option(help="Replace artifacts already in --out.")] = False,
) -> None:
    """Export a checkpoint to ONNX (+ INT8, + TensorRT) and measure each artifact's parity."""
    from nltool.export.artifacts import ExportRequest, export_artifacts
    from nltool.export.int8_auto import parse_keep_float
    from nltool.export.tensorrt_build import EngineProfile

    request = ExportRequest(
        checkpoint=checkpoint, out=out, arch=arch.value if arch else None,
        pairwise=pairwise.value if pairwise else None, onnx=onnx, trt=trt, fp16=fp16, int8=int8, calib=calib,
        int8_keep_float=parse_keep_float(int8_keep_float), int8_engine=int8_engine, opset=opset,  # type: ignore[arg-type]
        profile=EngineProfile(min_batch, opt_batch, max_batch, min_side, opt_side, max_side),
        workspace_gib=workspace_gib, device=device, force=force)
    result = export_artifacts(request, log=lambda msg: typer.echo(f"[export] {msg}", err=True))
    for report in result.reports:
        verdict = "ok" if report.passed else f"FAILED: {report.failure()}"
        typer.echo(f"{report.artifact}: max |Δprob| {report.max_abs:.2e}, mean {report.mean_abs:.2e}, "
                   f"mask IoU {report.min_mask_iou:.4f} ({report.precision}) {verdict}")
    typer.echo(f"parity report: {result.parity}")
    if not result.passed:
        raise typer.Exit(1)
