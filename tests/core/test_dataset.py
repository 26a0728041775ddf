"""DeepGlobe-layout dataset: pairing, validation errors that name the bad file, splits, tensors."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nltool.data.deepglobe import DatasetError, Sample, find_pairs, read_sample, split_samples, validate_samples
from nltool.errors import NltoolError
from nltool.training.dataset import RoadDataset


def write_pair(
    folder: Path,
    sample_id: str,
    size: tuple[int, int] = (40, 32),
    mask_size: tuple[int, int] | None = None,
    mask: np.ndarray | None = None,
) -> Sample:
    """Write ``<id>_sat.jpg`` (random RGB of width×height ``size``) and ``<id>_mask.png``."""
    folder.mkdir(parents=True, exist_ok=True)
    width, height = size
    rgb = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(folder / f"{sample_id}_sat.jpg", quality=95)
    if mask is None:
        mask_w, mask_h = mask_size or size
        mask = np.zeros((mask_h, mask_w), np.uint8)
        mask[: mask_h // 2] = 255
    Image.fromarray(mask).save(folder / f"{sample_id}_mask.png")
    return Sample(sample_id, folder / f"{sample_id}_sat.jpg", folder / f"{sample_id}_mask.png")


def test_find_pairs_lists_pairs_sorted_by_id(tmp_path: Path) -> None:
    """Each image is paired with the mask of the same id; other files are ignored."""
    for sample_id in ("b", "a", "c"):
        write_pair(tmp_path, sample_id)
    (tmp_path / "notes.txt").write_text("not data")
    samples = find_pairs(tmp_path)
    assert [s.id for s in samples] == ["a", "b", "c"]
    assert samples[0] == Sample("a", tmp_path / "a_sat.jpg", tmp_path / "a_mask.png")
    validate_samples(samples)


def test_missing_folder_and_file_instead_of_folder(tmp_path: Path) -> None:
    """A folder that is not there, or is a file, is named in the error."""
    with pytest.raises(DatasetError, match=re.escape(f"{tmp_path / 'nope'} does not exist")):
        find_pairs(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(DatasetError, match="is not a folder"):
        find_pairs(tmp_path / "file")


def test_empty_folder_says_what_to_put_there(tmp_path: Path) -> None:
    """A folder without any *_sat.jpg is refused, naming the folder and the expected layout."""
    (tmp_path / "only_mask.png").write_bytes(b"")
    expected = re.escape(str(tmp_path)) + r" holds no \*_sat\.jpg images.*_mask\.png"
    with pytest.raises(DatasetError, match=expected):
        find_pairs(tmp_path)


def test_image_without_mask_names_the_missing_mask(tmp_path: Path) -> None:
    """An image whose mask is missing fails with the path where the mask was expected."""
    write_pair(tmp_path, "ok")
    write_pair(tmp_path, "lonely").mask.unlink()
    expected = f"lonely_sat.jpg has no {tmp_path / 'lonely_mask.png'}"
    with pytest.raises(DatasetError, match=re.escape(expected)):
        find_pairs(tmp_path)


@pytest.mark.parametrize("damage", ["truncate", "text"])
def test_corrupt_image_is_named_before_training(tmp_path: Path, damage: str) -> None:
    """A truncated JPEG, or a text file named .jpg, fails validation with the file's path."""
    write_pair(tmp_path, "good")
    bad = write_pair(tmp_path, "bad", size=(64, 64)).image
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"this is not a JPEG\n")
    samples = find_pairs(tmp_path)
    with pytest.raises(DatasetError, match=re.escape(f"cannot read {bad}")):
        validate_samples(samples)


def test_corrupt_mask_is_named(tmp_path: Path) -> None:
    """An unreadable mask fails validation with the mask's path."""
    sample = write_pair(tmp_path, "a")
    sample.mask.write_bytes(sample.mask.read_bytes()[:20])
    with pytest.raises(DatasetError, match=re.escape(f"cannot read {sample.mask}")):
        validate_samples(find_pairs(tmp_path))


def test_mask_of_another_size_names_both_files_and_sizes(tmp_path: Path) -> None:
    """A mask whose size differs from its image's is refused, saying both sizes."""
    sample = write_pair(tmp_path, "a", size=(40, 32), mask_size=(32, 40))
    expected = f"mask {sample.mask} is 32x40 but its image {sample.image} is 40x32"
    with pytest.raises(DatasetError, match=re.escape(expected)):
        validate_samples(find_pairs(tmp_path))


def test_zero_one_mask_is_refused_instead_of_read_as_no_road(tmp_path: Path) -> None:
    """A 0/1 mask would binarise to all background; it is refused with the fix."""
    mask = np.zeros((32, 40), np.uint8)
    mask[5:10] = 1
    write_pair(tmp_path, "a", mask=mask)
    with pytest.raises(DatasetError, match="only the values 0 and 1.*multiply the mask by 255"):
        validate_samples(find_pairs(tmp_path))


def test_validate_reports_progress(tmp_path: Path) -> None:
    """The progress callback gets the number of samples checked so far."""
    for sample_id in ("a", "b", "c"):
        write_pair(tmp_path, sample_id)
    seen: list[int] = []
    validate_samples(find_pairs(tmp_path), progress=seen.append)
    assert seen == [1, 2, 3]


def test_dataset_error_is_an_nltool_error() -> None:
    """The CLI prints DatasetError as a one-line message like every NltoolError."""
    assert issubclass(DatasetError, NltoolError)


def test_road_dataset_returns_unnormalized_image_and_binary_mask(tmp_path: Path) -> None:
    """Image float32 3×H×W in 0-255, mask float32 1×H×W in {0, 1} (rows of value 255 are road)."""
    write_pair(tmp_path, "a", size=(40, 32))
    dataset = RoadDataset(find_pairs(tmp_path))
    image, mask = dataset[0]
    assert len(dataset) == 1
    assert (image.shape, image.dtype) == ((3, 32, 40), torch.float32)
    assert (mask.shape, mask.dtype) == ((1, 32, 40), torch.float32)
    assert image.min() >= 0 and image.max() <= 255 and image.max() > 1, "not normalized: 0-255"
    assert torch.equal(mask[0, :16], torch.ones(16, 40)) and torch.equal(mask[0, 16:], torch.zeros(16, 40))


def test_rgb_non_binary_masks_are_binarised_at_128(tmp_path: Path) -> None:
    """An RGB mask with grey values is read as grey and thresholded: >= 128 is road."""
    grey = np.tile(np.array([0, 100, 127, 128, 200, 255], np.uint8), (32, 6))  # 32×36: images need 32 px
    rgb = np.repeat(grey[..., None], 3, axis=2)
    write_pair(tmp_path, "a", size=(36, 32), mask=rgb)
    _, mask = RoadDataset(find_pairs(tmp_path))[0]
    assert mask[0, 0, :6].tolist() == [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]


def test_transform_receives_and_returns_the_tensor_pair(tmp_path: Path) -> None:
    """The transform is called as transform(image, mask) on the tensors and its result is returned."""
    write_pair(tmp_path, "a", size=(40, 32))
    calls: list[tuple[torch.Size, torch.Size]] = []

    def flip(image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Record the shapes and flip both vertically."""
        calls.append((image.shape, mask.shape))
        return image.flip(-2), mask.flip(-2)

    plain_image, plain_mask = RoadDataset(find_pairs(tmp_path))[0]
    image, mask = RoadDataset(find_pairs(tmp_path), transform=flip)[0]
    assert calls == [((3, 32, 40), (1, 32, 40))]
    assert torch.equal(image, plain_image.flip(-2)) and torch.equal(mask, plain_mask.flip(-2))


def samples(n: int) -> list[Sample]:
    """``n`` samples with ids s00, s01, ... (the files need not exist to split)."""
    return [Sample(f"s{i:02d}", Path(f"s{i:02d}_sat.jpg"), Path(f"s{i:02d}_mask.png")) for i in range(n)]


def test_split_is_reproducible_disjoint_and_sized() -> None:
    """Same seed -> same split whatever the input order; another seed -> another split."""
    train, val = split_samples(samples(20), 0.25, seed=7)
    again = split_samples(list(reversed(samples(20))), 0.25, seed=7)
    other = split_samples(samples(20), 0.25, seed=8)
    assert (train, val) == again
    assert val != other[1]
    assert len(val) == 5 and len(train) == 15
    assert sorted(s.id for s in train + val) == [s.id for s in samples(20)]
    assert [s.id for s in val] == sorted(s.id for s in val)


def test_split_keeps_at_least_one_validation_sample_and_zero_means_none() -> None:
    """A tiny fraction still holds one sample out; fraction 0 keeps everything for training."""
    assert len(split_samples(samples(5), 0.01, seed=0)[1]) == 1
    assert split_samples(samples(5), 0.0, seed=0) == (samples(5), [])


@pytest.mark.parametrize(
    ("n", "fraction", "message"),
    [(5, 1.0, r"in \[0, 1\)"), (5, -0.1, r"in \[0, 1\)"), (5, float("nan"), r"in \[0, 1\)"),
     (1, 0.5, "leaves none to train on")],
)
def test_split_refuses_impossible_fractions(n: int, fraction: float, message: str) -> None:
    """Fractions outside [0, 1), or a split that leaves nothing to train on, are ValueErrors."""
    with pytest.raises(ValueError, match=message):
        split_samples(samples(n), fraction, seed=0)


def test_images_go_through_the_predict_reader_grey_repeated_alpha_as_nodata(tmp_path: Path) -> None:
    """A grey scene reads as three equal bands and an RGBA one (sniffed by its bytes, whatever its
    name) with alpha 0 as invalid pixels, exactly as ``nltool predict`` reads them."""
    sample = write_pair(tmp_path, "grey", size=(40, 32))
    Image.fromarray(np.full((32, 40), 90, np.uint8)).save(sample.image, format="JPEG")
    scene = read_sample(sample)
    assert scene.rgb.shape == (32, 40, 3) and (scene.rgb == 90).all() and scene.valid is None
    rgba = np.full((32, 40, 4), 200, np.uint8)
    rgba[:, :8, 3] = 0
    Image.fromarray(rgba, "RGBA").save(sample.image, format="PNG")
    scene = read_sample(sample)
    assert scene.valid is not None and not scene.valid[:, :8].any() and scene.valid[:, 8:].all()
