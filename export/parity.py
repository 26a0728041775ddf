"""Parity reports: how far an exported artifact's probabilities and masks are from the checkpoint's.

Every artifact is compared with the PyTorch checkpoint it came from on random RGB batches of
several sizes (non-square and batch 2 included) and on synthetic road scenes, which look like
real imagery. ``parity.json`` records, per artifact and case, the max and mean absolute
difference of ``prob`` and the IoU of the thresholded masks, the tolerances, and pass/fail.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nltool.fileio import write_json
from nltool.inference.backends.base import Backend
from nltool.metrics import road_iou
from nltool.synthetic import render_scene, scene_rng

MASK_THRESHOLD = 0.5


@dataclass(frozen=True)
class Tolerance:
    """Pass criteria: ``max_abs`` on probabilities (None = not judged) and the least mask IoU."""

    max_abs: float | None
    min_mask_iou: float


TOLERANCES: dict[str, Tolerance] = {
    "fp32": Tolerance(max_abs=1e-4, min_mask_iou=0.999),
    # FP16 and INT8 change every activation; they are judged on the masks a user sees.
    "fp16": Tolerance(max_abs=2e-2, min_mask_iou=0.99),
    "int8": Tolerance(max_abs=None, min_mask_iou=0.98),
}


@dataclass(frozen=True)
class ParityCase:
    """One input batch: its name and shape."""

    name: str
    batch: torch.Tensor


@dataclass
class CaseResult:
    """Differences measured on one case."""

    name: str
    shape: list[int]
    max_abs: float
    mean_abs: float
    mask_iou: float


@dataclass
class ParityReport:
    """Everything measured for one artifact against its checkpoint."""

    artifact: str
    precision: str
    tolerance: Tolerance
    cases: list[CaseResult] = field(default_factory=list)
    quantization: dict[str, Any] | None = None
    """For INT8: which Conv groups stayed float and how that was chosen."""

    @property
    def max_abs(self) -> float:
        return max(c.max_abs for c in self.cases)

    @property
    def mean_abs(self) -> float:
        return float(np.mean([c.mean_abs for c in self.cases]))

    @property
    def min_mask_iou(self) -> float:
        return min(c.mask_iou for c in self.cases)

    @property
    def passed(self) -> bool:
        tol = self.tolerance
        return (tol.max_abs is None or self.max_abs <= tol.max_abs) and self.min_mask_iou >= tol.min_mask_iou

    def failure(self) -> str:
        """What failed and by how much (empty when it passed)."""
        problems = []
        if self.tolerance.max_abs is not None and self.max_abs > self.tolerance.max_abs:
            problems.append(f"max |Δprob| {self.max_abs:.3g} > {self.tolerance.max_abs:.3g} "
                            f"({self.max_abs / self.tolerance.max_abs:.1f}× the tolerance)")
        if self.min_mask_iou < self.tolerance.min_mask_iou:
            problems.append(f"mask IoU {self.min_mask_iou:.4f} < {self.tolerance.min_mask_iou}")
        return "; ".join(problems)

    def to_dict(self) -> dict[str, Any]:
        return {"artifact": self.artifact, "precision": self.precision, "tolerance": asdict(self.tolerance),
                "max_abs": self.max_abs, "mean_abs": self.mean_abs, "min_mask_iou": self.min_mask_iou,
                "passed": self.passed, "cases": [asdict(c) for c in self.cases],
                **({"quantization": self.quantization} if self.quantization is not None else {})}


def scene_case(n: int = 2, size: int = 512, seed: int = 0) -> ParityCase:
    """``n`` synthetic road scenes of ``size``² (real-looking input, as ``nltool data synth`` makes)."""
    scenes = np.stack([render_scene(size, scene_rng(seed, i))[0] for i in range(n)])
    return ParityCase(f"synthetic scenes {n}×{size}×{size}", torch.from_numpy(scenes).permute(0, 3, 1, 2).float())


def random_case(n: int, height: int, width: int, generator: torch.Generator) -> ParityCase:
    """``n`` images of uniform random RGB 0-255 (noise: every pixel's path through the model differs)."""
    return ParityCase(f"random {n}×{height}×{width}", torch.rand(n, 3, height, width, generator=generator) * 255)


def default_cases(seed: int = 0) -> list[ParityCase]:
    """Random RGB at 256², 320×512 and batch 2 of 64×96, plus two 512² synthetic road scenes."""
    gen = torch.Generator().manual_seed(seed)
    cases = [random_case(n, h, w, gen) for n, h, w in ((1, 256, 256), (1, 320, 512), (2, 64, 96))]
    return [*cases, scene_case(2, 512, seed)]


def int8_cases(seed: int = 0) -> list[ParityCase]:
    """INT8 is judged on real-looking scenes only: on noise a trained model's probabilities sit near
    the threshold everywhere, so quantization noise flips masks that no real image would (measured:
    mask IoU 0.91 on noise vs 0.98 on scenes for the demo's checkpoint)."""
    return [scene_case(4, 512, seed)]


def stacked_mask(prob: np.ndarray) -> np.ndarray:
    """N×1×H×W probabilities as one (N·H)×W road mask, so road IoU pools the whole batch."""
    return (prob > MASK_THRESHOLD).reshape(-1, prob.shape[-1])


def measure_parity(reference: Backend, candidate: Backend, artifact: str, precision: str,
                   cases: list[ParityCase] | None = None) -> ParityReport:
    """Run both backends on every case and compare probabilities and masks."""
    report = ParityReport(artifact=artifact, precision=precision, tolerance=TOLERANCES[precision])
    for case in cases or default_cases():
        batch = case.batch.numpy()
        expected, got = reference.run(batch), candidate.run(batch)
        diff = np.abs(got.astype(np.float64) - expected)
        report.cases.append(CaseResult(
            name=case.name, shape=list(case.batch.shape), max_abs=float(diff.max()), mean_abs=float(diff.mean()),
            mask_iou=road_iou(stacked_mask(got), stacked_mask(expected))))
    return report


def write_parity(path: Path, reports: list[ParityReport], reference: str) -> Path:
    """Write ``parity.json`` atomically: one entry per artifact, and whether all passed."""
    data = {"reference": reference, "passed": all(r.passed for r in reports),
            "artifacts": {Path(r.artifact).name: r.to_dict() for r in reports}}
    return write_json(path, data)
