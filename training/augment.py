"""Paired image/mask augmentation as the NL-LinkNet (and D-LinkNet) authors' ``data.py`` does it.

The authors' loader (yswang1717/NLLinkNet ``data.py``, from D-LinkNet) applies, in order: a random
HSV shift, a random shift/scale/aspect warp with black borders, a horizontal flip, a vertical flip
and a 90° rotation, then crops. Here the same steps are built on torchvision transforms v2: the
image travels as ``tv_tensors.Image`` and the mask as ``tv_tensors.Mask``, so every geometric step
moves both with the same parameters (masks are resampled with nearest neighbour, so they stay
exactly 0/1) and the colour step touches only the image.

Randomness: every random draw comes from torch's global RNG (``torch.rand``/``torch.randint`` here
and inside torchvision v2) -- never ``random`` or numpy. A trainer that seeds it or saves and
restores ``torch.get_rng_state()`` therefore replays the same augmentations on resume, and
DataLoader workers, which torch seeds with ``base_seed + worker_id``, draw distinct streams.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from nltool.errors import NltoolError
from nltool.training.dataset import PairTransform

SIDE_MULTIPLE = 32  # the model's input sides must be multiples of 32 (five stride-2 stages)
MAX_SHIFT = 0.5  # beyond this a shifted window could show more border than image


class AugmentConfigError(NltoolError, ValueError):
    """An augmentation setting out of range: a crop not a multiple of 32, a bad range or probability."""


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation knobs, each mapped to the authors' ``data.py`` (``default_load``).

    - ``crop``: output side in pixels, a multiple of 32 -- the authors' ``crop_size`` (1024, the
      paper's setting; smaller crops are taken at a random position).
    - ``hue_shift``: hue moves by up to ±this fraction of the hue circle (0.05 = ±18°) -- the
      authors' ``randomHueSaturationValue`` hue shift (±30 OpenCV hue units, i.e. up to ±60°).
    - ``saturation``: saturation is scaled by a factor in [1 - s, 1 + s] -- the authors' additive
      saturation shift (±5 on 0-255).
    - ``value``: brightness is scaled by a factor in [1 - v, 1 + v] -- the authors' additive value
      shift (±15 on 0-255, about ±6%).
    - ``scale``: zoom range; the crop shows ``crop / zoom`` source pixels per side (bilinear for the
      image) -- the authors' ``randomShiftScaleRotate`` ``scale_limit`` (they use 0.9-1.1).
    - ``aspect``: aspect-ratio range; width is zoomed by ``zoom * sqrt(a)`` and height by
      ``zoom / sqrt(a)``, the authors' formula for ``aspect_limit`` (they use 0.9-1.1).
    - ``shift``: the crop window may hang over the image edge by up to this fraction of its side,
      the uncovered part black in the image and 0 in the mask -- the authors' ``shift_limit`` (0.1
      of the side, ``BORDER_CONSTANT`` 0). At most 0.5.
    - ``hflip`` / ``vflip`` / ``rot90``: probabilities of a horizontal flip, a vertical flip and a
      counter-clockwise 90° turn -- the authors' ``randomHorizontalFlip``, ``randomVerticleFlip``
      and ``randomRotate90`` (0.5 each).

    The authors apply the HSV shift and the warp each to half of the samples (``u=0.5``) and do no
    free rotation (``rotate_limit=0``); here colour and warp are drawn for every sample, from ranges
    that contain the identity. A range of one value (``(1.0, 1.0)``) or 0 turns a step off.
    """

    crop: int = 1024
    hue_shift: float = 0.05
    saturation: float = 0.15
    value: float = 0.15
    scale: tuple[float, float] = (0.8, 1.2)
    aspect: tuple[float, float] = (0.9, 1.1)
    shift: float = 0.1
    hflip: float = 0.5
    vflip: float = 0.5
    rot90: float = 0.5

    def __post_init__(self) -> None:
        """Check every knob (so a bad ``--crop`` fails before training) and store ranges as tuples."""
        _check_crop(self.crop)
        _check_between("hue_shift", self.hue_shift, 0.0, 0.5, "a fraction of the hue circle")
        _check_between("saturation", self.saturation, 0.0, 1.0, "the factor range is [1 - s, 1 + s]")
        _check_between("value", self.value, 0.0, 1.0, "the factor range is [1 - v, 1 + v]")
        _check_between("shift", self.shift, 0.0, MAX_SHIFT, "a fraction of the crop window's side")
        for name in ("hflip", "vflip", "rot90"):
            _check_between(name, getattr(self, name), 0.0, 1.0, "a probability")
        for name in ("scale", "aspect"):
            # JSON round trips (e.g. a config saved in a checkpoint) turn tuples into lists.
            object.__setattr__(self, name, _positive_range(name, getattr(self, name)))


def build_train_transform(config: AugmentConfig) -> PairTransform:
    """The training augmentation: random shift/scale/aspect crop, HSV jitter, flips and rot90.

    Takes and returns ``(image float32 3×H×W RGB 0-255, mask float32 1×H×W in {0, 1})``; the output
    is ``crop``×``crop``, the image still float32 in 0-255 and the mask exactly 0/1. Images smaller
    than the crop are first padded by reflection (image and mask alike).
    """
    steps: list[v2.Transform] = [
        _ShiftScaleCrop(config.crop, config.scale, config.aspect, config.shift)
    ]
    if config.hue_shift or config.saturation or config.value:
        steps.append(
            _ColorJitter255(brightness=config.value, saturation=config.saturation, hue=config.hue_shift)
        )
    steps += [
        v2.RandomHorizontalFlip(config.hflip),
        v2.RandomVerticalFlip(config.vflip),
        _RandomRot90(config.rot90),
    ]
    return _PairPipeline(config.crop, v2.Compose(steps))


def build_eval_transform(crop: int | None) -> PairTransform | None:
    """The deterministic validation transform: a centre ``crop``×``crop`` crop, or None for full images.

    Images smaller than the crop are padded first by reflection (image and mask alike), as in training.
    """
    if crop is None:
        return None
    _check_crop(crop)
    return _PairPipeline(crop, v2.CenterCrop(crop))


def _check_crop(crop: int) -> None:
    """Raise :class:`AugmentConfigError` unless ``crop`` is a positive multiple of 32 (the model's need)."""
    if isinstance(crop, bool) or not isinstance(crop, int) or crop <= 0 or crop % SIDE_MULTIPLE:
        hint = ""
        if isinstance(crop, (int, float)) and not isinstance(crop, bool) and crop > 0:
            below = int(crop) // SIDE_MULTIPLE * SIDE_MULTIPLE
            hint = f"; try {below or SIDE_MULTIPLE} or {below + SIDE_MULTIPLE}"
        raise AugmentConfigError(
            f"crop must be a positive multiple of {SIDE_MULTIPLE} (the model's input sides are), "
            f"got {crop!r}{hint}"
        )


class _PairPipeline:
    """A picklable ``PairTransform``: pad the pair to at least crop×crop, run v2 steps on it, unwrap."""

    def __init__(self, crop: int, transform: v2.Transform) -> None:
        """Pad to ``crop`` before ``transform`` (which receives a tv_tensors Image and Mask)."""
        self.crop = crop
        self.transform = transform

    def __call__(self, image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Transform one pair; returns plain tensors, as :class:`~nltool.training.dataset.RoadDataset` does."""
        image, mask = _pad_to(image, mask, self.crop)
        out_image, out_mask = self.transform(tv_tensors.Image(image), tv_tensors.Mask(mask))
        return out_image.as_subclass(torch.Tensor), out_mask.as_subclass(torch.Tensor)

    def __repr__(self) -> str:
        """Show the crop and the steps, for logs."""
        return f"{type(self).__name__}(crop={self.crop}, transform={self.transform!r})"


class _ShiftScaleCrop(v2.Transform):
    """A random crop×crop view with zoom, aspect and a shift that may show a zero border (the authors' warp).

    The window of ``crop / (zoom·sqrt(a))`` × ``crop·sqrt(a) / zoom`` source pixels sits anywhere
    in the image or up to ``shift`` of its side past an edge; it is resized to crop×crop, the image
    bilinearly (antialiased) and the mask with exact nearest neighbour (pixel-centre aligned, like
    the bilinear image, so the two stay registered).
    """

    def __init__(
        self, crop: int, scale: tuple[float, float], aspect: tuple[float, float], shift: float
    ) -> None:
        """Output side ``crop``; zoom range ``scale``, aspect range ``aspect``, overhang ``shift``."""
        super().__init__()
        self.crop = crop
        self.scale = scale
        self.aspect = aspect
        self.shift = shift

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        """Draw the window (top, left, height, width) from torch's global RNG."""
        height, width = v2.query_size(flat_inputs)
        zoom = _uniform(*self.scale)
        stretch = math.sqrt(_uniform(*self.aspect))
        win_h = max(1, round(self.crop * stretch / zoom))
        win_w = max(1, round(self.crop / (zoom * stretch)))
        return {
            "top": _window_start(height, win_h, self.shift),
            "left": _window_start(width, win_w, self.shift),
            "height": win_h,
            "width": win_w,
        }

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        """Crop (zero outside the image) and resize one input: bilinear for images, nearest for masks."""
        window = F.crop(inpt, params["top"], params["left"], params["height"], params["width"])
        size = [self.crop, self.crop]
        if isinstance(inpt, tv_tensors.Mask):
            return F.resize(window, size, interpolation=v2.InterpolationMode.NEAREST_EXACT)
        return F.resize(window, size, interpolation=v2.InterpolationMode.BILINEAR, antialias=True)


class _ColorJitter255(v2.ColorJitter):
    """``v2.ColorJitter`` for float images in 0-255 (its kernels expect 0-1); masks pass through.

    The result is clamped to 0-255.
    """

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        """Jitter a ``tv_tensors.Image`` on the 0-1 scale, then back to 0-255; leave anything else."""
        if not isinstance(inpt, tv_tensors.Image):
            return inpt
        unit = tv_tensors.wrap(inpt / 255.0, like=inpt)
        jittered = super().transform(unit, params)
        return tv_tensors.wrap((jittered * 255.0).clamp_(0.0, 255.0), like=inpt)


class _RandomRot90(v2.Transform):
    """With probability ``p``, turn image and mask 90° counter-clockwise, exactly (the authors' ``np.rot90``)."""

    def __init__(self, p: float) -> None:
        """Turn with probability ``p``."""
        super().__init__()
        self.p = p

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        """Decide once per pair, from torch's global RNG, whether to turn."""
        return {"turn": bool(torch.rand(()) < self.p)}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        """Turn one tensor over its last two axes, or return it unchanged."""
        if not params["turn"]:
            return inpt
        return tv_tensors.wrap(torch.rot90(inpt.as_subclass(torch.Tensor), 1, dims=(-2, -1)), like=inpt)


def _pad_to(image: torch.Tensor, mask: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad both sides of a pair evenly to at least ``size``, both by reflection so labels match pixels."""
    height, width = image.shape[-2:]
    pad_h, pad_w = max(size - height, 0), max(size - width, 0)
    if not pad_h and not pad_w:
        return image, mask
    top, left = pad_h // 2, pad_w // 2
    rows = _reflect_indices(height, top, pad_h - top)
    cols = _reflect_indices(width, left, pad_w - left)
    return (image.index_select(-2, rows).index_select(-1, cols),
            mask.index_select(-2, rows).index_select(-1, cols))


def _reflect_indices(n: int, before: int, after: int) -> torch.Tensor:
    """Source indices of reflect padding (edge not repeated) for any width, even wider than ``n``.

    ``torch.nn.functional.pad`` reflects only pads narrower than the input; this folds repeatedly.
    """
    index = torch.arange(-before, n + after)
    if n == 1:
        return torch.zeros_like(index)
    period = 2 * (n - 1)
    index = index.remainder(period)
    return torch.where(index < n, index, period - index)


def _uniform(low: float, high: float) -> float:
    """A float drawn uniformly from [low, high] with torch's global RNG."""
    return low + (high - low) * float(torch.rand(()))


def _window_start(side: int, window: int, shift: float) -> int:
    """Start of a ``window`` along an image ``side``: anywhere inside, or up to ``shift·window`` past an edge."""
    overhang = round(shift * window)
    low, high = sorted((-overhang, side - window + overhang))
    return int(torch.randint(low, high + 1, ()))


def _check_between(name: str, value: float, low: float, high: float, meaning: str) -> None:
    """Raise :class:`AugmentConfigError` unless ``low <= value <= high`` (NaN fails too)."""
    if not low <= value <= high:
        raise AugmentConfigError(f"{name} must be in [{low:g}, {high:g}] ({meaning}), got {value!r}")


def _positive_range(name: str, value: Any) -> tuple[float, float]:
    """``value`` as a (low, high) tuple of positive floats with low <= high, or raise naming ``name``."""
    try:
        low, high = (float(bound) for bound in value)
    except (TypeError, ValueError):
        raise AugmentConfigError(f"{name} must be a (low, high) pair of numbers, got {value!r}") from None
    if not 0 < low <= high < math.inf:
        raise AugmentConfigError(
            f"{name} must be a (low, high) range with 0 < low <= high, got {value!r}"
        )
    return (low, high)
