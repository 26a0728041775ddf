"""Labelled scenes in the DeepGlobe layout: ``<id>_sat.jpg`` (RGB) beside ``<id>_mask.png`` (white road).

Find the pairs, validate every file before work starts (each problem names the file and says what
to do), split off a seeded validation part, and read pairs as arrays. ``nltool evaluate``, training
and the demo all read labelled data through here; images go through :func:`nltool.imagery.read_rgb`,
the reader ``predict`` and the server use, so every image mode reads the same everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

from nltool.errors import ImageError, NltoolError
from nltool.imagery import read_rgb

IMAGE_SUFFIX = "_sat.jpg"
MASK_SUFFIX = "_mask.png"
# A mask pixel is road when its 8-bit grey value is >= 128: the authors' loader divides by 255 and
# keeps values >= 0.5 (yswang1717/NLLinkNet and D-LinkNet data.py: ``mask[mask >= 0.5] = 1``).
MASK_THRESHOLD = 128
MAX_LISTED = 5
LAYOUT_HINT = "pass a folder of <id>_sat.jpg + <id>_mask.png pairs (DeepGlobe layout)"

class DatasetError(NltoolError, ValueError):
    """Training data that cannot be used: a missing folder or mask, an unreadable file, mismatched sizes."""


@dataclass(frozen=True)
class Sample:
    """One labelled scene: its id and the paths of its RGB image and its road mask."""

    id: str
    image: Path
    mask: Path


def find_pairs(root: Path) -> list[Sample]:
    """List the ``<id>_sat.jpg`` / ``<id>_mask.png`` pairs in ``root``, sorted by id.

    Checks the folder and that every image has its mask; file contents are checked by
    :func:`validate_samples`.
    """
    root = Path(root)
    if not root.exists():
        raise DatasetError(f"data folder {root} does not exist: {LAYOUT_HINT}")
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder: {LAYOUT_HINT}")
    images = sorted(root.glob(f"*{IMAGE_SUFFIX}"))
    if not images:
        raise DatasetError(
            f"{root} holds no *{IMAGE_SUFFIX} images: put <id>_sat.jpg + <id>_mask.png pairs there "
            "(DeepGlobe layout), or make synthetic ones with `nltool data synth`"
        )
    samples = [_sample_for(image) for image in images]
    _check_masks_exist(samples)
    return samples


def validate_samples(samples: Sequence[Sample], progress: Callable[[int], None] | None = None
                     ) -> list[tuple[int, int]]:
    """Decode every image and mask fully and check their sizes, so bad data fails before training.

    Returns each sample's (height, width); ``progress`` receives the number of samples checked so far.
    """
    sizes = []
    for done, sample in enumerate(samples, start=1):
        rgb = read_sample(sample).rgb
        sizes.append((int(rgb.shape[0]), int(rgb.shape[1])))
        if progress is not None:
            progress(done)
    return sizes


class Scene(NamedTuple):
    """One decoded pair: H×W×3 uint8 RGB, H×W bool road (grey value >= 128), H×W bool valid
    pixels of the image (None when all are: alpha 0 and nodata are invalid, as in ``predict``)."""

    rgb: np.ndarray
    road: np.ndarray
    valid: np.ndarray | None


def read_sample(sample: Sample) -> Scene:
    """Load one pair; the image goes through :func:`nltool.imagery.read_rgb`, the reader ``predict`` uses."""
    try:
        rgb, valid = read_rgb(sample.image, name=sample.image.name)
    except ImageError as exc:
        raise DatasetError(f"cannot read {sample.image}: {exc}. Replace or remove this file") from exc
    mask = _read_mask(sample.mask)
    size = (rgb.shape[1], rgb.shape[0])
    if mask.size != size:
        raise DatasetError(
            f"mask {sample.mask} is {_wxh(mask.size)} but its image {sample.image} is {_wxh(size)}: "
            "a mask must have its image's size"
        )
    grey = np.asarray(mask)
    if grey.max() == 1:
        raise DatasetError(
            f"mask {sample.mask} holds only the values 0 and 1: roads must be white (255) on black (0); "
            "multiply the mask by 255"
        )
    return Scene(rgb, grey >= MASK_THRESHOLD, valid)


def split_samples(
    samples: Sequence[Sample], val_fraction: float, seed: int
) -> tuple[list[Sample], list[Sample]]:
    """Hold out ``val_fraction`` of ``samples`` (at least one when > 0) for validation, reproducibly.

    Samples are sorted by id, then permuted by ``numpy.random.default_rng(seed)``; the first
    ``round(n * val_fraction)`` go to validation. Both returned lists are sorted by id.
    """
    if not 0 <= val_fraction < 1:
        raise DatasetError(f"val_fraction must be in [0, 1), got {val_fraction}")
    ordered = sorted(samples, key=lambda sample: sample.id)
    n_val = 0 if val_fraction == 0 else max(1, int(len(ordered) * val_fraction + 0.5))
    if len(ordered) - n_val < 1:
        raise DatasetError(
            f"holding out {n_val} of {len(ordered)} samples for validation leaves none to train on: "
            "add data, lower the validation fraction, or pass a labelled validation folder"
        )
    held_out = set(np.random.default_rng(seed).permutation(len(ordered))[:n_val].tolist())
    train = [sample for index, sample in enumerate(ordered) if index not in held_out]
    val = [sample for index, sample in enumerate(ordered) if index in held_out]
    return train, val


def _sample_for(image: Path) -> Sample:
    """The sample of an ``<id>_sat.jpg`` path (its mask may not exist yet)."""
    sample_id = image.name[: -len(IMAGE_SUFFIX)]
    return Sample(id=sample_id, image=image, mask=image.with_name(sample_id + MASK_SUFFIX))


def _check_masks_exist(samples: list[Sample]) -> None:
    """Raise naming the expected mask path of every image (up to a few) that has none."""
    missing = [sample for sample in samples if not sample.mask.is_file()]
    if not missing:
        return
    listed = "; ".join(f"{sample.image.name} has no {sample.mask}" for sample in missing[:MAX_LISTED])
    more = f" (and {len(missing) - MAX_LISTED} more)" if len(missing) > MAX_LISTED else ""
    raise DatasetError(
        f"{len(missing)} image(s) without a mask: {listed}{more}. Add each <id>_mask.png "
        "(white road on black, same size) or remove the image"
    )


def _read_mask(path: Path) -> Image.Image:
    """Open and fully decode a mask as 8-bit grey; a file Pillow cannot read raises naming the file."""
    try:
        with Image.open(path) as img:
            img.load()
            return img.convert("L")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DatasetError(f"cannot read {path}: {exc}. Replace or remove this file") from exc


def _wxh(size: tuple[int, int]) -> str:
    """A Pillow (width, height) as ``WxH``."""
    return f"{size[0]}x{size[1]}"
