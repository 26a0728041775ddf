"""Deterministic data order and augmentation, so ``--resume`` continues exactly where a run stopped.

The order of an epoch is a permutation seeded by (seed, epoch), split across distributed ranks;
each sample's augmentation draws from torch's RNG seeded by (seed, epoch, index). Neither
depends on how many batches were drawn before, on worker processes, or on a restart.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import Dataset, Sampler

from nltool.training.dataset import PairTransform

_MIX = 1_000_003  # a prime that keeps (seed, epoch, index) seeds apart


def epoch_seed(seed: int, epoch: int, index: int = 0) -> int:
    """A 63-bit seed for (seed, epoch, index)."""
    return ((seed * _MIX + epoch) * _MIX + index) % (2**63 - 1)


class EpochSampler(Sampler[int]):
    """This rank's sample indices for one epoch, optionally skipping the first ``skip`` of them.

    The epoch's permutation is padded (by wrapping) to a multiple of ``world_size`` so every rank
    gets the same number of samples, as ``DistributedSampler`` does.
    """

    def __init__(self, size: int, *, seed: int, epoch: int, rank: int = 0, world_size: int = 1,
                 skip: int = 0) -> None:
        generator = torch.Generator().manual_seed(epoch_seed(seed, epoch))
        order = torch.randperm(size, generator=generator).tolist()
        total = -(-size // world_size) * world_size
        order += order[: total - size]
        self.indices = order[rank::world_size][skip:]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class SeededAugmentation(Dataset[Any]):
    """Wraps a dataset of (image, mask) pairs; augments sample ``i`` of epoch ``e`` with its own seed."""

    def __init__(self, dataset: Dataset[Any], transform: PairTransform | None, seed: int) -> None:
        self.dataset = dataset
        self.transform = transform
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose augmentation stream to use (call before building the loader)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.dataset[index]
        if self.transform is None:
            return image, mask
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(epoch_seed(self.seed, self.epoch, index))
            return self.transform(image, mask)
