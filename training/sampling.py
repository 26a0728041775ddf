"""What an epoch is, deterministically: a number of crops drawn from the images in proportion to their area.

An epoch is ``samples`` crops. Image ``i`` of area ``a_i`` gets ``samples * a_i / sum(a)`` of them:
the whole part always, the fractional parts as a seeded weighted draw, so one 8000² scene and many
1024² tiles are both sampled by area. When every image has the same size and ``samples`` is the
number of images (DeepGlobe at crop 1024), every image is drawn exactly once: one epoch is one
pass over the files, in a permutation seeded by (seed, epoch).

Each draw has an id ``image + k * n_images`` (the k-th crop of that image in this epoch); its
augmentation draws from torch's RNG seeded by (seed, epoch, draw id). Neither the order nor the
augmentation depends on how many batches were drawn before, on worker processes or on a restart,
so ``--resume`` continues exactly.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import Dataset, Sampler

from nltool.training.dataset import PairTransform

_MIX = 1_000_003  # a prime that keeps (seed, epoch, index) seeds apart
_REMAINDER_STREAM = -1  # the (seed, epoch, index) slot of the draw that places fractional crops
MIN_STEPS_PER_EPOCH = 100
"""The default epoch is never shorter than this many optimizer steps, so the plateau rule compares
means over many batches rather than the noise of a few."""


def epoch_seed(seed: int, epoch: int, index: int = 0) -> int:
    """A 63-bit seed for (seed, epoch, index)."""
    return ((seed * _MIX + epoch) * _MIX + index) % (2**63 - 1)


def default_samples_per_epoch(areas: Sequence[int], crop: int, samples_per_step: int) -> int:
    """Crops that cover the training pixels at least once, and at least :data:`MIN_STEPS_PER_EPOCH` steps.

    ``samples_per_step`` is the effective batch (batch size × accumulation × processes).
    """
    cover = math.ceil(sum(areas) / (crop * crop))
    return max(cover, MIN_STEPS_PER_EPOCH * samples_per_step)


def crops_per_image(areas: Sequence[int], samples: int, seed: int, epoch: int) -> list[int]:
    """How many of an epoch's ``samples`` crops each image gets: in proportion to its area.

    Image ``i`` gets ``floor(samples * a_i / A)``; the crops left over go to distinct images drawn
    with weights equal to their fractional parts (seeded by (seed, epoch)), so the expected count
    is exactly proportional and no image is off by more than one.
    """
    total = sum(areas)
    counts = [samples * area // total for area in areas]
    left = samples - sum(counts)
    if left:
        fractions = torch.tensor([samples * area % total for area in areas], dtype=torch.float64)
        generator = torch.Generator().manual_seed(epoch_seed(seed, epoch, _REMAINDER_STREAM))
        for index in torch.multinomial(fractions, left, replacement=False, generator=generator).tolist():
            counts[index] += 1
    return counts


class EpochSampler(Sampler[int]):
    """This rank's draw ids for one epoch (see the module docstring), optionally skipping the first ``skip``.

    The epoch's shuffled draws are padded (by wrapping) to a multiple of ``world_size`` so every
    rank gets the same number, as ``DistributedSampler`` does.
    """

    def __init__(self, areas: Sequence[int], samples: int, *, seed: int, epoch: int, rank: int = 0,
                 world_size: int = 1, skip: int = 0) -> None:
        n_images = len(areas)
        counts = crops_per_image(areas, samples, seed, epoch)
        draws = sorted(image + k * n_images for image, count in enumerate(counts) for k in range(count))
        generator = torch.Generator().manual_seed(epoch_seed(seed, epoch))
        order = [draws[i] for i in torch.randperm(len(draws), generator=generator).tolist()]
        total = -(-len(order) // world_size) * world_size
        order += order[: total - len(order)]
        self.indices = order[rank::world_size][skip:]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class SeededAugmentation(Dataset[Any]):
    """Crops of a dataset of (image, mask) pairs, indexed by draw id: draw ``d`` of epoch ``e`` is image
    ``d mod len(dataset)``, augmented with its own seed (seed, e, d)."""

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

    def __getitem__(self, draw: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.dataset[draw % len(self)]
        if self.transform is None:
            return image, mask
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(epoch_seed(self.seed, self.epoch, draw))
            return self.transform(image, mask)


@dataclass(frozen=True)
class EpochPlan:
    """How many crops an epoch draws and how they group into optimizer steps, for one process of the job.

    Each optimizer step takes ``accumulate`` batches of ``batch_size`` crops in each of
    ``world_size`` processes; the last step of an epoch may take fewer batches.
    """

    samples: int
    batch_size: int
    accumulate: int
    world_size: int
    areas: tuple[int, ...]
    default: bool

    @classmethod
    def build(cls, areas: Sequence[int], *, samples: int | None, crop: int, batch_size: int, accumulate: int,
              world_size: int) -> EpochPlan:
        """The plan for images of ``areas`` pixels; ``samples`` None picks :func:`default_samples_per_epoch`."""
        chosen = samples or default_samples_per_epoch(areas, crop, batch_size * accumulate * world_size)
        return cls(chosen, batch_size, accumulate, world_size, tuple(areas), samples is None)

    @property
    def effective_batch_size(self) -> int:
        """Crops per optimizer step over all processes."""
        return self.batch_size * self.accumulate * self.world_size

    @property
    def batches_per_epoch(self) -> int:
        """Batches one process draws per epoch (its share of the padded draws)."""
        per_rank = -(-self.samples // self.world_size)
        return -(-per_rank // self.batch_size)

    @property
    def steps_per_epoch(self) -> int:
        """Optimizer steps per epoch."""
        return -(-self.batches_per_epoch // self.accumulate)

    def batches_in_step(self, step_in_epoch: int) -> int:
        """How many batches optimizer step ``step_in_epoch`` (0-based) of an epoch accumulates."""
        return min(self.accumulate, self.batches_per_epoch - step_in_epoch * self.accumulate)

    def coverage(self, crop: int) -> float:
        """How many times an epoch's crops cover the training pixels (before zoom and shifts)."""
        return self.samples * crop * crop / sum(self.areas)

    def to_dict(self, crop: int) -> dict[str, Any]:
        """What split.json records about the epoch."""
        return {"samples_per_epoch": self.samples, "default": self.default, "steps_per_epoch": self.steps_per_epoch,
                "effective_batch_size": self.effective_batch_size, "pixel_coverage": round(self.coverage(crop), 3)}

    def sampler(self, *, seed: int, epoch: int, rank: int, skip_steps: int) -> EpochSampler:
        """This rank's draws of ``epoch``, after the first ``skip_steps`` optimizer steps (for resume)."""
        return EpochSampler(self.areas, self.samples, seed=seed, epoch=epoch, rank=rank, world_size=self.world_size,
                            skip=skip_steps * self.accumulate * self.batch_size)
