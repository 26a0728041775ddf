"""``--int8-keep-float auto``: keep the fewest Conv groups in float that hold INT8's mask tolerance.

The calibration images are split: most calibrate, every fourth is held out (with fewer than four
images the same images do both, and ``parity.json`` says so). Each candidate (a set of groups of
:data:`~nltool.export.quantize.KEEP_FLOAT_GROUPS` left float) is quantized from one shared
calibration (:class:`~nltool.export.quantize.Calibration`: the activation ranges are computed
once) and judged by its mask IoU against the FP32 ONNX on the held-out images and on the synthetic
scenes of the INT8 parity gate, whichever is lower, so the chosen model also passes the gate.
Candidates are tried by size, all-Conv first, and the search stops at the first size where one
passes: at most 2³ candidates for three groups, one when the all-Conv model already holds.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import onnx

from nltool.export.onnx_export import Int8GateError
from nltool.export.parity import TOLERANCES, int8_cases, stacked_mask
from nltool.export.quantize import (
    Calibration,
    annotate_int8,
    calibration_batches,
    check_keep_float,
    groups_present,
    prepare_calibration,
    write_int8,
)
from nltool.inference.backends.onnxruntime_backend import OnnxRuntimeBackend
from nltool.metrics import road_iou

AUTO: Final = "auto"
KeepFloat = tuple[str, ...] | Literal["auto"]
"""``auto`` (search), or the groups to leave float (``()``: every Conv quantized)."""
HOLD_OUT_EVERY = 4
"""Every fourth calibration image is held out for measuring, when there are at least four."""


def parse_keep_float(text: str) -> KeepFloat:
    """``--int8-keep-float``: ``auto``, ``none`` (quantize every Conv) or comma-separated group names."""
    names = tuple(text.replace(",", " ").split())
    if names == (AUTO,):
        return AUTO
    if names == ("none",):
        return ()
    check_keep_float(names)
    return names


def split_calibration(count: int) -> tuple[list[int], list[int]]:
    """Indices of the images that calibrate and of those held out to measure; with fewer than
    :data:`HOLD_OUT_EVERY` images all of them do both."""
    if count < HOLD_OUT_EVERY:
        return list(range(count)), list(range(count))
    held = [i for i in range(count) if i % HOLD_OUT_EVERY == HOLD_OUT_EVERY - 1]
    return [i for i in range(count) if i not in held], held


def candidate_levels(groups: Sequence[str]) -> list[list[tuple[str, ...]]]:
    """Every subset of ``groups``, by size: ``[[()], [(a,), (b,), ...], ..., [groups]]``."""
    return [list(itertools.combinations(groups, size)) for size in range(len(groups) + 1)]


def choose_keep_float(measured: Mapping[tuple[str, ...], float], tolerance: float) -> tuple[str, ...] | None:
    """The fewest groups whose measured mask IoU meets ``tolerance`` (ties: the higher IoU), or None
    when no measured candidate does."""
    passing = [(groups, iou) for groups, iou in measured.items() if iou >= tolerance]
    if not passing:
        return None
    return min(passing, key=lambda item: (len(item[0]), -item[1]))[0]


def search_keep_float(measure: Callable[[tuple[str, ...]], float], groups: Sequence[str],
                      tolerance: float) -> tuple[tuple[str, ...] | None, dict[tuple[str, ...], float]]:
    """Measure candidates by size (:func:`candidate_levels`) until a size holds one that meets
    ``tolerance``; returns :func:`choose_keep_float`'s pick (None: none did) and every IoU measured."""
    measured: dict[tuple[str, ...], float] = {}
    for level in candidate_levels(groups):
        for candidate in level:
            measured[candidate] = measure(candidate)
        chosen = choose_keep_float(measured, tolerance)
        if chosen is not None:
            return chosen, measured
    return None, measured


@dataclass(frozen=True)
class CandidateResult:
    """One candidate's mask IoU against the FP32 ONNX."""

    keep_float: tuple[str, ...]
    held_out_iou: float
    scenes_iou: float

    @property
    def iou(self) -> float:
        """What the tolerance judges: the lower of the two."""
        return min(self.held_out_iou, self.scenes_iou)


@dataclass
class Int8Choice:
    """Which groups stay float, how that was decided, and what was measured (``parity.json``)."""

    keep_float: tuple[str, ...]
    mode: Literal["auto", "explicit"]
    calibration_images: int
    held_out_images: int = 0
    held_out_separate: bool = False
    tolerance: float | None = None
    candidates: list[CandidateResult] = field(default_factory=list)
    search_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"keep_float": list(self.keep_float), "mode": self.mode,
                                "calibration_images": self.calibration_images}
        if self.mode == AUTO:
            data |= {"tolerance_min_mask_iou": self.tolerance, "held_out_images": self.held_out_images,
                     "held_out_separate_from_calibration": self.held_out_separate,
                     "measured_against": "model.onnx (FP32) on the held-out images and on the INT8 parity scenes",
                     "search_seconds": round(self.search_seconds, 2),
                     "candidates": [{**asdict(c), "keep_float": list(c.keep_float), "iou": c.iou}
                                    for c in self.candidates]}
        return data

    def note(self) -> str:
        """The end of the INT8 model's ``quantization`` metadata value."""
        if self.mode != AUTO:
            return ""
        best = next(c for c in self.candidates if c.keep_float == self.keep_float)
        return (f"; chosen by --int8-keep-float auto: mask IoU {best.iou:.4f} vs FP32 "
                f"(tolerance {self.tolerance}, {self.held_out_images} held-out images + parity scenes)")


class _Judge:
    """Runs candidates and compares their masks with the FP32 ONNX's on fixed inputs."""

    def __init__(self, fp32_onnx: Path, held_out: list[np.ndarray], scenes: np.ndarray) -> None:
        self._held_out, self._scenes = held_out, scenes
        self._expected = self._masks(fp32_onnx)

    def _masks(self, model: Path) -> tuple[np.ndarray, np.ndarray]:
        backend = OnnxRuntimeBackend(model, device="cpu")  # the session predict runs

        def run(batch: np.ndarray) -> np.ndarray:
            return stacked_mask(backend.run(batch))

        held = np.concatenate([run(batch) for batch in self._held_out])
        return held, np.concatenate([run(scene[None]) for scene in self._scenes])

    def judge(self, model: Path, keep_float: tuple[str, ...]) -> CandidateResult:
        held, scenes = self._masks(model)
        return CandidateResult(keep_float, road_iou(held, self._expected[0]), road_iou(scenes, self._expected[1]))


def build_int8(fp32_onnx: Path, out: Path, calib_dir: Path, work: Path, *, keep_float: KeepFloat = AUTO,
               tolerance: float = TOLERANCES["int8"].min_mask_iou, calib_size: int = 512, calib_limit: int = 16,
               log: Callable[[str], None] = print) -> tuple[Int8Choice, Calibration]:
    """Write the CPU INT8 model to ``out`` (atomically) with ``keep_float`` groups float, or with the
    fewest that meet ``tolerance`` for ``auto``; returns the choice and the calibration, which the
    TensorRT flavour reuses. ``work`` is a folder the caller removes; the candidates measured stay
    there, and the chosen one is copied to ``out`` with its metadata completed, not quantized again.
    Raises :class:`Int8GateError`, writing nothing to ``out``, when even every group in float misses
    the tolerance."""
    batches = calibration_batches(calib_dir, calib_size, calib_limit)
    if keep_float != AUTO:
        calibration = prepare_calibration(fp32_onnx, batches, work)
        choice = Int8Choice(tuple(keep_float), "explicit", calibration_images=len(batches))
        write_int8(calibration, out, keep_float=choice.keep_float)
        return choice, calibration
    start = time.perf_counter()
    calib_idx, held_idx = split_calibration(len(batches))
    calibration = prepare_calibration(fp32_onnx, [batches[i] for i in calib_idx], work)
    scenes = np.concatenate([np.asarray(case.batch, dtype=np.float32) for case in int8_cases()])
    judge = _Judge(fp32_onnx, [batches[i] for i in held_idx], scenes)
    results: dict[tuple[str, ...], CandidateResult] = {}
    candidates: dict[tuple[str, ...], Path] = {}

    def measure(groups: tuple[str, ...]) -> float:
        path = candidates[groups] = write_int8(calibration, work / f"candidate-{len(results)}.onnx",
                                               keep_float=groups)
        results[groups] = judge.judge(path, groups)
        log(f"INT8 with {'+'.join(groups) or 'no'} group(s) float: mask IoU {results[groups].iou:.4f} "
            f"(tolerance {tolerance})")
        return results[groups].iou

    groups = groups_present(onnx.load(fp32_onnx))
    chosen, _ = search_keep_float(measure, groups, tolerance)
    choice = Int8Choice(chosen or (), "auto", calibration_images=len(calib_idx), held_out_images=len(held_idx),
                        held_out_separate=held_idx != calib_idx, tolerance=tolerance,
                        candidates=list(results.values()), search_seconds=time.perf_counter() - start)
    if chosen is None:
        tried = "; ".join(f"{'+'.join(r.keep_float) or 'none'} float: {r.iou:.4f}" for r in results.values())
        raise Int8GateError(
            f"INT8 cannot keep masks within mask IoU {tolerance} of FP32 for this model, even with every "
            f"Conv group ({', '.join(groups)}) in float. Measured on {len(held_idx)} held-out calibration "
            f"image(s) and the parity scenes: {tried}. A model that is not yet sure of itself "
            "flips masks under quantization noise: train it longer, calibrate on more images like those you "
            "serve, or export without --int8. No INT8 model was written.")
    annotate_int8(candidates[chosen], out, choice.note())
    return choice, calibration
