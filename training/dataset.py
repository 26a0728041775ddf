"""Labelled pairs as tensors for training: a :class:`torch.utils.data.Dataset` over DeepGlobe-layout
samples (discovery, validation and reading live in :mod:`nltool.data.deepglobe`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from nltool.data.deepglobe import Sample, read_sample

PairTransform = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class RoadDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Pairs as tensors: image float32 3×H×W RGB in 0-255 (not normalized: the model does that),
    mask float32 1×H×W in {0, 1}; ``transform(image, mask)``, if given, maps the pair."""

    def __init__(self, samples: Sequence[Sample], transform: PairTransform | None = None) -> None:
        """Serve ``samples`` in the given order, passing each pair through ``transform``."""
        self.samples = list(samples)
        self.transform = transform

    def __len__(self) -> int:
        """Number of samples."""
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Load sample ``index`` as (image, mask) tensors, transformed if a transform was given."""
        scene = read_sample(self.samples[index])
        image_t = torch.from_numpy(np.ascontiguousarray(scene.rgb.transpose(2, 0, 1))).float()
        mask_t = torch.from_numpy(scene.road).unsqueeze(0).float()
        if self.transform is not None:
            return self.transform(image_t, mask_t)
        return image_t, mask_t
