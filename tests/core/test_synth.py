"""Synthetic road scenes: deterministic, DeepGlobe layout, sensible roads, occluders over roads."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nltool.data.deepglobe import find_pairs, validate_samples
from nltool.data.synth import SynthConfig, write_synthetic_dataset
from nltool.synthetic import render_scene, scene_rng

SCENES = range(20)


def file_bytes(folder: Path) -> dict[str, bytes]:
    """Name -> content of every file in ``folder``."""
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def scene(index: int, occluders: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Scene ``index`` of seed 0 at 256×256."""
    return render_scene(256, scene_rng(0, index), occluders=occluders)


def test_same_seed_writes_identical_files_and_another_seed_does_not(tmp_path: Path) -> None:
    """Two runs with one seed give byte-identical files; another seed gives other scenes."""
    write_synthetic_dataset(tmp_path / "a", SynthConfig(n=2, size=64, seed=3))
    write_synthetic_dataset(tmp_path / "b", SynthConfig(n=2, size=64, seed=3))
    write_synthetic_dataset(tmp_path / "c", SynthConfig(n=2, size=64, seed=4))
    first, again, other = (file_bytes(tmp_path / name) for name in "abc")
    assert first == again
    assert first.keys() == other.keys()
    assert all(first[name] != other[name] for name in first)


def test_scene_k_is_the_same_whatever_n(tmp_path: Path) -> None:
    """Scene k depends on (seed, k) only: the first 3 scenes of n=3 and n=5 are identical."""
    write_synthetic_dataset(tmp_path / "three", SynthConfig(n=3, size=64))
    write_synthetic_dataset(tmp_path / "five", SynthConfig(n=5, size=64))
    three, five = file_bytes(tmp_path / "three"), file_bytes(tmp_path / "five")
    assert len(three) == 6 and len(five) == 10
    assert all(five[name] == content for name, content in three.items())


def test_files_follow_the_deepglobe_layout_and_masks_are_binary(tmp_path: Path) -> None:
    """<id>_sat.jpg RGB beside <id>_mask.png 8-bit grey in {0, 255}; the folder reads as a dataset."""
    ids = write_synthetic_dataset(tmp_path, SynthConfig(n=3, size=96))
    assert ids == ["synth_000000", "synth_000001", "synth_000002"]
    expected = sorted(f"{i}_{end}" for i in ids for end in ("sat.jpg", "mask.png"))
    assert sorted(file_bytes(tmp_path)) == expected, "exactly the pairs, no temporary files left"
    for sample_id in ids:
        with Image.open(tmp_path / f"{sample_id}_sat.jpg") as image:
            assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (96, 96))
        with Image.open(tmp_path / f"{sample_id}_mask.png") as mask:
            assert (mask.format, mask.mode, mask.size) == ("PNG", "L", (96, 96))
            assert set(np.unique(np.asarray(mask)).tolist()) == {0, 255}
    validate_samples(find_pairs(tmp_path))


@pytest.mark.parametrize("size", [32, 33, 100])
def test_render_scene_shapes_and_types(size: int) -> None:
    """Any allowed size gives an H×W×3 uint8 image and an H×W uint8 mask of {0, 255}."""
    image, mask = render_scene(size, np.random.default_rng(1))
    assert (image.shape, image.dtype) == ((size, size, 3), np.uint8)
    assert (mask.shape, mask.dtype) == ((size, size), np.uint8)
    assert set(np.unique(mask).tolist()) <= {0, 255}


def test_road_share_is_sensible_and_roads_cross_the_image() -> None:
    """Every scene has 3-35% road pixels, and road reaches at least two sides of the image."""
    for index in SCENES:
        road = scene(index)[1] > 0
        assert 0.03 <= road.mean() <= 0.35, f"scene {index}: road share {road.mean():.3f}"
        sides = [road[0].any(), road[-1].any(), road[:, 0].any(), road[:, -1].any()]
        assert sum(sides) >= 2, f"scene {index}: road touches {sum(sides)} side(s)"


def test_occluders_hide_part_of_the_road_in_the_image_only() -> None:
    """Occluders change the image over some road pixels (about 5-15% of them), never the mask."""
    shares = []
    for index in SCENES:
        image, mask = scene(index)
        bare, bare_mask = scene(index, occluders=False)
        assert np.array_equal(mask, bare_mask)
        changed = np.abs(image.astype(int) - bare.astype(int)).max(axis=-1) > 20
        shares.append(changed[mask > 0].mean())
    assert min(shares) > 0.02, shares
    assert 0.05 <= float(np.mean(shares)) <= 0.2, shares


def test_roads_are_hidden_by_canopies_shadows_and_clouds() -> None:
    """Over the scenes, some road pixels turn leaf-green, some darker, some whiter (cloud)."""
    canopy = shadow = cloud = 0
    for index in SCENES:
        image, mask = scene(index)
        bare = scene(index, occluders=False)[0]
        before, after = bare[mask > 0].astype(int), image[mask > 0].astype(int)
        changed = np.abs(after - before).max(axis=1) > 20
        red, green, blue = after.T
        canopy += np.count_nonzero(changed & (green > red + 20) & (green > blue + 20) & (green < 130))
        shadow += np.count_nonzero(changed & (after.sum(axis=1) < 0.7 * before.sum(axis=1)))
        whiter = (after.sum(axis=1) > before.sum(axis=1) + 60) & (after.min(axis=1) > 170)
        cloud += np.count_nonzero(changed & whiter)
    assert min(canopy, shadow, cloud) > 300, (canopy, shadow, cloud)


def test_refuses_a_folder_that_already_holds_images(tmp_path: Path) -> None:
    """A second run into the same folder is refused and changes nothing, unless overwrite=True."""
    write_synthetic_dataset(tmp_path, SynthConfig(n=1, size=32, seed=0))
    before = file_bytes(tmp_path)
    with pytest.raises(ValueError, match=re.escape(str(tmp_path)) + r" already holds \*_sat\.jpg.*--force"):
        write_synthetic_dataset(tmp_path, SynthConfig(n=1, size=32, seed=1))
    assert file_bytes(tmp_path) == before
    write_synthetic_dataset(tmp_path, SynthConfig(n=1, size=32, seed=1), overwrite=True)
    assert file_bytes(tmp_path) != before
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is not a folder"):
        write_synthetic_dataset(tmp_path / "file", SynthConfig(n=1, size=32))


def test_progress_counts_scenes_written(tmp_path: Path) -> None:
    """The progress callback gets 1, 2, ..., n."""
    seen: list[int] = []
    write_synthetic_dataset(tmp_path, SynthConfig(n=3, size=32), progress=seen.append)
    assert seen == [1, 2, 3]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"n": 0}, "at least 1"), ({"size": 31}, "between 32 and 4096"), ({"size": 4097}, "between 32 and 4096"),
     ({"seed": -1}, "non-negative")],
)
def test_config_rejects_impossible_requests(kwargs: dict[str, int], message: str) -> None:
    """Counts below 1, sizes outside 32-4096 and negative seeds are ValueErrors saying the range."""
    with pytest.raises(ValueError, match=message):
        SynthConfig(**kwargs)
