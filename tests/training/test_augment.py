"""Paired augmentation: output size, masks stay 0/1, image and mask stay registered, exact flips/rot90,
reproducibility from torch's RNG, eval crops, and config errors."""

from __future__ import annotations

import math
import pickle

import pytest
import torch

from nltool.errors import NltoolError
from nltool.training.augment import (
    AugmentConfig,
    AugmentConfigError,
    build_eval_transform,
    build_train_transform,
)

NO_COLOUR = {"hue_shift": 0.0, "saturation": 0.0, "value": 0.0}
NO_WARP = {"scale": (1.0, 1.0), "aspect": (1.0, 1.0), "shift": 0.0}
NO_FLIPS = {"hflip": 0.0, "vflip": 0.0, "rot90": 0.0}
# Stronger than the defaults so every geometric path (zoom in/out, stretch, overhang) is exercised.
STRONG_WARP = {"scale": (0.6, 1.6), "aspect": (0.7, 1.4), "shift": 0.5}


def road_pair(height: int, width: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A scene whose red channel is 255·mask (thick straight and diagonal roads), green a texture,
    blue 255 everywhere (so pixels that came from outside the image, filled with 0, are recognisable)."""
    gen = torch.Generator().manual_seed(seed)
    rows = torch.arange(height).view(-1, 1).float()
    cols = torch.arange(width).view(1, -1).float()
    road = ((rows - height * 0.3).abs() < 4) | ((cols - width * 0.6).abs() < 3)
    road |= (rows - cols * 0.7 - 10).abs() < 5
    road |= (rows + cols - (height + width) * 0.45).abs() < 2.5
    mask = road.float().unsqueeze(0)
    green = torch.rand(1, height, width, generator=gen) * 120 + cols.unsqueeze(0) % 50
    image = torch.cat([255 * mask, green, torch.full_like(mask, 255.0)])
    return image, mask


def run(
    config: AugmentConfig, image: torch.Tensor, mask: torch.Tensor, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply the train transform of ``config`` to a pair after seeding torch's global RNG."""
    torch.manual_seed(seed)
    return build_train_transform(config)(image, mask)


@pytest.mark.parametrize(
    "size", [(160, 128), (96, 96), (40, 70), (10, 7)], ids=["larger", "equal", "smaller", "tiny"]
)
def test_output_is_crop_by_crop_with_binary_mask(size: tuple[int, int]) -> None:
    """Inputs larger, equal or smaller than the crop give crop×crop float32 outputs, the mask in {0, 1}."""
    image, mask = road_pair(*size)
    config = AugmentConfig(crop=96, **STRONG_WARP)
    for seed in range(5):
        out_image, out_mask = run(config, image, mask, seed)
        assert out_image.shape == (3, 96, 96) and out_mask.shape == (1, 96, 96)
        assert out_image.dtype == torch.float32 and out_mask.dtype == torch.float32
        assert type(out_image) is torch.Tensor and type(out_mask) is torch.Tensor
        assert set(out_mask.unique().tolist()) <= {0.0, 1.0}
        assert out_image.min() >= 0.0 and out_image.max() <= 255.0


def test_mask_stays_binary_and_image_in_range_with_default_config() -> None:
    """With every default step on (colour jitter included), masks stay exactly 0/1 and images in 0-255."""
    image, mask = road_pair(120, 120)
    image[1] = torch.linspace(0, 255, 120).view(1, -1).expand(120, -1)  # colours reaching both ends
    config = AugmentConfig(crop=64)
    for seed in range(10):
        out_image, out_mask = run(config, image, mask, seed)
        assert set(out_mask.unique().tolist()) <= {0.0, 1.0}
        assert out_image.min() >= 0.0 and out_image.max() <= 255.0


@pytest.mark.parametrize("seed", range(12))
def test_image_and_mask_stay_registered(seed: int) -> None:
    """After zoom/stretch/shift/flips/rot90 the red channel (255·mask before) still marks the mask.

    The image is resampled bilinearly and the mask by nearest neighbour, so they may differ on a road's
    edge pixels only (>= 99.4% agree here); a one-pixel shift, or torchvision's legacy NEAREST mask
    resize (half a source pixel off the bilinear image), drops agreement to about 95-98%.
    """
    image, mask = road_pair(160, 144, seed)
    out_image, out_mask = run(AugmentConfig(crop=96, **NO_COLOUR, **STRONG_WARP), image, mask, seed)
    inside = out_image[2] > 250  # blue was 255 everywhere inside the image, 0 where the crop overhangs
    assert inside.float().mean() > 0.3
    red_road = out_image[0] > 127.5
    agreement = (red_road == out_mask[0].bool())[inside].float().mean()
    assert agreement >= 0.99, f"red channel and mask agree on only {agreement:.2%} of pixels"
    assert out_mask[0][inside].sum() > 50  # roads made it into the crop, so the check means something
    overhang = out_image[2] < 5  # pixels wholly outside the image (not the blended rim)
    assert (out_mask[0][overhang] == 0).all()  # the overhang is "no road"


def test_padding_reflects_image_and_mask_alike() -> None:
    """A pair smaller than the crop is padded by reflection on both, so reflected roads stay labelled."""
    image, mask = road_pair(40, 50)
    out_image, out_mask = build_eval_transform(64)(image, mask)
    top, left = (64 - 40) // 2, (64 - 50) // 2
    assert torch.equal(out_image[:, top : top + 40, left : left + 50], image)
    assert torch.equal(out_mask[:, top : top + 40, left : left + 50], mask)
    assert torch.equal(out_image[:, top - 1, left : left + 50], image[:, 1])  # reflected, edge not repeated
    assert torch.equal(out_image[:, top : top + 40, left - 3], image[:, :, 3])
    assert (out_image[2] == 255).all()  # the blue channel shows no zero border anywhere
    assert torch.equal(out_mask[:, top - 1, left : left + 50], mask[:, 1])
    assert torch.equal(out_mask[:, top : top + 40, left - 3], mask[:, :, 3])


@pytest.mark.parametrize(
    ("flips", "expected"),
    [
        ({"hflip": 1.0}, lambda x: torch.flip(x, dims=[-1])),
        ({"vflip": 1.0}, lambda x: torch.flip(x, dims=[-2])),
        ({"rot90": 1.0}, lambda x: torch.rot90(x, 1, dims=(-2, -1))),
        (
            {"hflip": 1.0, "vflip": 1.0, "rot90": 1.0},
            lambda x: torch.rot90(torch.flip(x, dims=[-2, -1]), 1, dims=(-2, -1)),
        ),
        ({}, lambda x: x),
    ],
    ids=["hflip", "vflip", "rot90", "all", "none"],
)
def test_flips_and_rot90_are_exact_without_warp(flips: dict[str, float], expected) -> None:
    """With zoom, stretch and shift off and a crop the image's size, flips and rot90 move pixels exactly."""
    image, mask = road_pair(64, 64)
    image[1, 3, 5] = 7.25  # an asymmetric marker: a wrong direction of turn cannot pass
    config = AugmentConfig(crop=64, **NO_COLOUR, **NO_WARP, **{**NO_FLIPS, **flips})
    out_image, out_mask = run(config, image, mask, seed=3)
    assert torch.equal(out_image, expected(image))
    assert torch.equal(out_mask, expected(mask))


def test_rot90_turns_counter_clockwise_like_numpy() -> None:
    """The turn goes the authors' way (``np.rot90`` of H×W×C): the top-right corner goes to the top-left."""
    image = torch.zeros(3, 32, 32)
    image[:, 0, 31] = 200.0
    mask = torch.zeros(1, 32, 32)
    mask[:, 0, 31] = 1.0
    config = AugmentConfig(crop=32, **NO_COLOUR, **NO_WARP, **{**NO_FLIPS, "rot90": 1.0})
    out_image, out_mask = run(config, image, mask, 0)
    assert out_image[0, 0, 0] == 200.0 and out_mask[0, 0, 0] == 1.0


def test_same_seed_same_output_and_different_seed_different_output() -> None:
    """Randomness comes from torch's global RNG only: seeding it replays the augmentation exactly."""
    image, mask = road_pair(128, 128)
    config = AugmentConfig(crop=64)
    first = run(config, image, mask, seed=11)
    again = run(config, image, mask, seed=11)
    other = run(config, image, mask, seed=12)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[0], other[0])


def test_restoring_rng_state_replays_the_next_sample() -> None:
    """A trainer that saves ``torch.get_rng_state()`` and restores it gets the same next augmentation."""
    image, mask = road_pair(100, 100)
    transform = build_train_transform(AugmentConfig(crop=64))
    torch.manual_seed(5)
    transform(image, mask)
    state = torch.get_rng_state()
    expected = transform(image, mask)
    torch.set_rng_state(state)
    replayed = transform(image, mask)
    assert torch.equal(expected[0], replayed[0]) and torch.equal(expected[1], replayed[1])


def test_colour_jitter_changes_only_the_image() -> None:
    """With geometry off, the colour step alters the image but leaves the mask as it was."""
    image, mask = road_pair(64, 64)
    image[2] = 90.0  # a colourful image so hue and saturation have something to act on
    config = AugmentConfig(crop=64, **NO_WARP, **NO_FLIPS, hue_shift=0.2, saturation=0.5, value=0.5)
    changed = [not torch.equal(run(config, image, mask, seed)[0], image) for seed in range(3)]
    assert all(changed)
    assert torch.equal(run(config, image, mask, 0)[1], mask)


def test_train_transform_is_picklable_for_dataloader_workers() -> None:
    """Spawned DataLoader workers receive the transform by pickling; it must survive the round trip."""
    image, mask = road_pair(80, 80)
    transform = pickle.loads(pickle.dumps(build_train_transform(AugmentConfig(crop=64))))
    torch.manual_seed(0)
    assert transform(image, mask)[0].shape == (3, 64, 64)


def test_eval_transform_is_a_deterministic_centre_crop() -> None:
    """The eval transform cuts the centre, draws nothing from the RNG, and None keeps full images."""
    image, mask = road_pair(100, 90)
    transform = build_eval_transform(64)
    state = torch.get_rng_state()
    out_image, out_mask = transform(image, mask)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(out_image, image[:, 18:82, 13:77])
    assert torch.equal(out_mask, mask[:, 18:82, 13:77])
    assert build_eval_transform(None) is None


def test_config_keeps_ranges_as_tuples() -> None:
    """Ranges given as lists (as a JSON round trip gives them) become tuples, so configs compare equal."""
    assert AugmentConfig(scale=[0.8, 1.2], aspect=[0.9, 1.1]) == AugmentConfig()  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"crop": 100}, r"crop must be a positive multiple of 32.*got 100; try 96 or 128"),
        ({"crop": 0}, r"crop must be a positive multiple of 32"),
        ({"crop": -64}, r"crop must be a positive multiple of 32"),
        ({"crop": 64.0}, r"crop must be a positive multiple of 32"),
        ({"hue_shift": 0.6}, r"hue_shift must be in \[0, 0.5\]"),
        ({"saturation": -0.1}, r"saturation must be in \[0, 1\]"),
        ({"value": math.nan}, r"value must be in \[0, 1\]"),
        ({"shift": 0.7}, r"shift must be in \[0, 0.5\]"),
        ({"hflip": 1.5}, r"hflip must be in \[0, 1\].*probability"),
        ({"rot90": -0.1}, r"rot90 must be in \[0, 1\]"),
        ({"scale": (1.2, 0.8)}, r"scale must be a \(low, high\) range with 0 < low <= high"),
        ({"scale": (0.0, 1.0)}, r"scale must be a \(low, high\) range"),
        ({"aspect": (0.9,)}, r"aspect must be a \(low, high\) pair of numbers"),
    ],
)
def test_bad_config_is_rejected_with_a_clear_message(kwargs: dict[str, object], message: str) -> None:
    """Each out-of-range knob fails at construction with a ValueError (an nltool error) naming it."""
    with pytest.raises(AugmentConfigError, match=message) as info:
        AugmentConfig(**kwargs)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError) and isinstance(info.value, NltoolError)


def test_eval_crop_is_validated() -> None:
    """The eval transform checks its crop like the training config does."""
    with pytest.raises(ValueError, match="multiple of 32"):
        build_eval_transform(50)
