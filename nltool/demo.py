"""``nltool demo``: show what this build of nltool does, end to end, on built-in synthetic input.

At this stage of the project the demo covers the foundation: every arch of the model family is
built and checked against the paper's parameter counts, runs a forward pass, and the default arch
survives a checkpoint round trip. It says plainly which stages are not in this build yet.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from nltool import __version__
from nltool.models import (
    DEFAULT_ARCH,
    build_model,
    count_parameters,
    list_archs,
    load_checkpoint,
    save_checkpoint,
)

PENDING_STAGES = ("training", "evaluation", "ONNX/TensorRT export", "TorchServe serving")


@dataclass(frozen=True)
class ArchRow:
    """One line of the demo's table."""

    arch: str
    parameters: int
    paper_params_m: float
    matches_paper: bool
    output_shape: tuple[int, ...]
    forward_seconds: float


@dataclass(frozen=True)
class DemoReport:
    """Everything the demo measured, and where it wrote its files."""

    rows: list[ArchRow]
    checkpoint: Path
    roundtrip_identical: bool
    report_md: Path
    report_json: Path


def _synthetic_batch(size: tuple[int, int], seed: int = 0) -> torch.Tensor:
    """A reproducible 1×3×H×W RGB batch in 0-255 (a smooth field plus noise, not a real scene)."""
    generator = torch.Generator().manual_seed(seed)
    h, w = size
    ys, xs = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    base = torch.stack([90 + 60 * xs * ys, 110 + 50 * ys, 70 + 40 * xs])
    noise = torch.randn(3, h, w, generator=generator) * 12
    return (base + noise).clamp(0, 255).unsqueeze(0)


def _write_reports(out: Path, rows: list[ArchRow], checkpoint: Path, identical: bool) -> tuple[Path, Path]:
    lines = [
        f"# nltool {__version__} demo report",
        "",
        "| arch | parameters | paper Table II | matches | output | forward (s) |",
        "|---|---|---|---|---|---|",
        *(
            f"| {r.arch} | {r.parameters / 1e6:.3f}M | {r.paper_params_m:.3f}M | {'yes' if r.matches_paper else 'NO'} "
            f"| {'×'.join(map(str, r.output_shape))} | {r.forward_seconds:.2f} |"
            for r in rows
        ),
        "",
        f"Checkpoint round trip ({checkpoint.name}): {'identical outputs' if identical else 'OUTPUTS DIFFER'}.",
        "",
        "Models are untrained (random encoder); not in this build yet: " + ", ".join(PENDING_STAGES) + ".",
        "",
    ]
    md = out / "report.md"
    md.write_text("\n".join(lines))
    js = out / "report.json"
    js.write_text(json.dumps(
        {"nltool_version": __version__, "rows": [asdict(r) for r in rows], "checkpoint": str(checkpoint),
         "roundtrip_identical": identical, "pending_stages": list(PENDING_STAGES)},
        indent=2,
    ))
    return md, js


def run_demo(out: Path, *, size: tuple[int, int] = (256, 384), progress: Callable[[str], None] = print) -> DemoReport:
    """Build every arch, check parameter counts, run a forward pass, round-trip a checkpoint."""
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    batch = _synthetic_batch(size)
    rows: list[ArchRow] = []
    for arch in list_archs():
        progress(f"building {arch} and running a {size[0]}×{size[1]} forward pass")
        model = build_model(arch).eval()
        started = time.perf_counter()
        with torch.inference_mode():
            logits = model(model.config.normalization.apply(batch))
        seconds = time.perf_counter() - started
        params = count_parameters(model)
        paper = model.config.spec.paper_params_m
        rows.append(ArchRow(arch, params, paper, round(params / 1e6, 3) == paper, tuple(logits.shape), seconds))

    progress(f"saving and reloading a {DEFAULT_ARCH} checkpoint")
    model = build_model(DEFAULT_ARCH).eval()
    checkpoint = save_checkpoint(out / f"{DEFAULT_ARCH}-untrained.pt", model)
    reloaded = load_checkpoint(checkpoint).model
    normalized = model.config.normalization.apply(batch)
    with torch.inference_mode():
        identical = torch.equal(model(normalized), reloaded(normalized))
    md, js = _write_reports(out, rows, checkpoint, identical)
    return DemoReport(rows=rows, checkpoint=checkpoint, roundtrip_identical=identical, report_md=md, report_json=js)
