"""Scoring a model on labelled scenes with the shared inference pipeline (``nltool evaluate``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nltool.data.deepglobe import Sample, read_sample
from nltool.fileio import write_json
from nltool.inference.pipeline import InferencePipeline
from nltool.metrics import IoUAccumulator
from nltool.vectors.scoring import AplsScorer

OnMask = Callable[[Sample, np.ndarray, np.ndarray, np.ndarray], None]
"""Called with (sample, RGB image, truth, predicted uint8 mask) for each scored sample."""


def evaluate_samples(pipeline: InferencePipeline, samples: Sequence[Sample],
                     progress: Callable[[int], None] | None = None, on_mask: OnMask | None = None
                     ) -> IoUAccumulator:
    """Predict a mask for every sample exactly as ``predict`` would, and score it against its truth;
    ``on_mask`` sees each prediction (the demo draws its figures from it)."""
    scores = IoUAccumulator()
    for sample in samples:
        scene = read_sample(sample)
        mask = pipeline.predict_mask(scene.rgb, scene.valid)
        scores.update(mask == 255, scene.road, sample.id)
        if on_mask:
            on_mask(sample, scene.rgb, scene.road, mask)
        if progress:
            progress(1)
    return scores


def evaluation_report(scores: IoUAccumulator, pipeline: InferencePipeline, data: Path, seconds: float
                      ) -> dict[str, Any]:
    """The JSON report: both metrics with definitions, per-image IoU, and the settings used."""
    return {
        "data": str(data),
        "model": pipeline.backend.describe(),
        "pipeline": pipeline.config.to_dict(),
        "seconds": seconds,
        **scores.to_dict(),
    }


def run_evaluation(pipeline: InferencePipeline, samples: Sequence[Sample], data: Path,
                   json_path: Path | None = None, progress: Callable[[int], None] | None = None,
                   on_mask: OnMask | None = None, apls: AplsScorer | None = None) -> dict[str, Any]:
    """Evaluate, build the report, and write it atomically to ``json_path`` if given; with ``apls``,
    each prediction is also vectorized and scored by APLS (the report's ``apls`` section)."""
    started = time.perf_counter()
    hooks = [hook for hook in (on_mask, apls) if hook is not None]

    def each_mask(sample: Sample, rgb: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> None:
        for hook in hooks:
            hook(sample, rgb, truth, mask)

    scores = evaluate_samples(pipeline, samples, progress, each_mask if hooks else None)
    report = evaluation_report(scores, pipeline, data, time.perf_counter() - started)
    if apls is not None:
        report["apls"] = apls.to_dict()
    if json_path is not None:
        write_json(json_path, report)
    return report
