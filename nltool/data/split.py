"""``nltool data split``: a seeded train/val split of a DeepGlobe-layout folder, written to disk.

The split is :func:`nltool.data.deepglobe.split_samples` -- the one ``nltool train --val-fraction F
--seed S`` holds out -- so a split on disk and a split made during training pick the same scenes.
Files are hard links where the filesystem allows, symbolic links across filesystems, and copies
where neither works. The folder appears whole or not at all: it is built beside ``out`` and renamed.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from nltool.data.deepglobe import DatasetError, Sample, find_pairs, split_samples

Method = Literal["hardlink", "symlink", "copy"]
SPLIT_FILE = "split.json"


@dataclass(frozen=True)
class SplitResult:
    """Where the parts went, how many scenes each holds, and how the files were placed."""

    train: Path
    val: Path
    n_train: int
    n_val: int
    methods: dict[str, int] = field(default_factory=dict)


def write_split(data: Path, out: Path, val_fraction: float, seed: int) -> SplitResult:
    """Write ``out/train`` and ``out/val`` (plus ``out/split.json``) from the pairs in ``data``.

    ``out`` must not exist or be an empty folder.
    """
    data, out = Path(data), Path(out)
    if not 0 < val_fraction < 1:
        raise DatasetError(f"--val-fraction must be between 0 and 1 (exclusive) for a split, got {val_fraction}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DatasetError(f"{out} already exists and is not an empty folder: choose another --out "
                           "(a split is written once and never mixed with older files)")
    train, val = split_samples(find_pairs(data), val_fraction, seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    methods: Counter[str] = Counter()
    try:
        for part, samples in (("train", train), ("val", val)):
            (building / part).mkdir()
            for sample in samples:
                for source in (sample.image, sample.mask):
                    methods[place_file(source, building / part / source.name)] += 1
        (building / SPLIT_FILE).write_text(json.dumps(_record(data, val_fraction, seed, train, val), indent=2))
        if out.exists():
            out.rmdir()
        building.rename(out)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return SplitResult(out / "train", out / "val", len(train), len(val), dict(methods))


def place_file(source: Path, dest: Path) -> Method:
    """Put ``source`` at ``dest``: a hard link, else a symbolic link (absolute), else a copy; returns which."""
    try:
        os.link(source, dest)
        return "hardlink"
    except OSError:
        pass
    try:
        dest.symlink_to(source.resolve())
        return "symlink"
    except OSError:
        shutil.copy2(source, dest)
        return "copy"


def _record(data: Path, val_fraction: float, seed: int, train: list[Sample], val: list[Sample]) -> dict:
    """What split.json says: the source, the settings, and the scene ids of each part."""
    return {"data": str(data.absolute()), "val_fraction": val_fraction, "seed": seed,
            "train": [s.id for s in train], "val": [s.id for s in val]}
