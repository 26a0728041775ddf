"""Scoring a model on labelled scenes with the shared inference pipeline (``nltool evaluate``)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nltool.data.deepglobe import Sample, read_sample
from nltool.fileio import atomic_path
from nltool.inference.pipeline import InferencePipeline
from nltool.metrics import IoUAccumulator

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
                   on_mask: OnMask | None = None) -> dict[str, Any]:
    """Evaluate, build the report, and write it atomically to ``json_path`` if given."""
    started = time.perf_counter()
    scores = evaluate_samples(pipeline, samples, progress, on_mask)
    report = evaluation_report(scores, pipeline, data, time.perf_counter() - started)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(json_path) as tmp:
            tmp.write_text(json.dumps(report, indent=2))
    return report
