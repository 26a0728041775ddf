"""``nltool data synth``: synthetic road scenes (:mod:`nltool.synthetic`) written in the DeepGlobe layout."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from nltool.errors import NltoolError
from nltool.fileio import atomic_path
from nltool.synthetic import MAX_SIZE, MIN_SIZE, render_scene, scene_rng

SCENE_PREFIX = "synth_"
JPEG_QUALITY = 95


class SynthConfigError(NltoolError, ValueError):
    """A synthetic-data request that cannot be met (bad count, size or seed, or a non-empty folder)."""


@dataclass(frozen=True)
class SynthConfig:
    """How many scenes of which size to generate, from which seed; ``occluders=False`` skips them."""

    n: int = 16
    size: int = 256
    seed: int = 0
    occluders: bool = True

    def __post_init__(self) -> None:
        """Reject counts, sizes and seeds the generator cannot honour, naming the allowed range."""
        if self.n < 1:
            raise SynthConfigError(f"n must be at least 1 scene, got {self.n}")
        if not MIN_SIZE <= self.size <= MAX_SIZE:
            raise SynthConfigError(f"size must be between {MIN_SIZE} and {MAX_SIZE} pixels, got {self.size}")
        if self.seed < 0:
            raise SynthConfigError(f"seed must be a non-negative integer, got {self.seed}")


def write_synthetic_dataset(
    out: Path,
    config: SynthConfig,
    progress: Callable[[int], None] | None = None,
    *,
    overwrite: bool = False,
) -> list[str]:
    """Write ``config.n`` scenes as ``synth_000000_sat.jpg`` + ``synth_000000_mask.png``, ... into ``out``.

    Each file is written atomically. ``progress`` receives the number of scenes written so far.
    A folder that already holds ``*_sat.jpg`` images is refused unless ``overwrite=True``, which
    replaces scenes of the same names and leaves every other file in place. Returns the scene ids.
    """
    out = Path(out)
    _prepare_folder(out, overwrite)
    ids = []
    for index in range(config.n):
        scene_id = f"{SCENE_PREFIX}{index:06d}"
        image, mask = render_scene(config.size, scene_rng(config.seed, index), occluders=config.occluders)
        _save(Image.fromarray(mask), out / f"{scene_id}_mask.png", format="PNG")
        _save(Image.fromarray(image), out / f"{scene_id}_sat.jpg", format="JPEG", quality=JPEG_QUALITY)
        ids.append(scene_id)
        if progress is not None:
            progress(index + 1)
    return ids


def _prepare_folder(out: Path, overwrite: bool) -> None:
    """Create ``out``, or refuse a file there or a folder that already holds images (unless overwriting)."""
    if out.exists() and not out.is_dir():
        raise SynthConfigError(f"{out} exists and is not a folder: choose another --out")
    if not overwrite and out.is_dir() and any(out.glob("*_sat.jpg")):
        raise SynthConfigError(
            f"{out} already holds *_sat.jpg images: choose an empty folder, or pass --force "
            "to replace scenes of the same names"
        )
    out.mkdir(parents=True, exist_ok=True)


def _save(image: Image.Image, dest: Path, **params: Any) -> None:
    """Save ``image`` to ``dest`` atomically (a crash never leaves a half-written file)."""
    with atomic_path(dest) as tmp:
        image.save(tmp, **params)


