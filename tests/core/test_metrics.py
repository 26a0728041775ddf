"""Road IoU on hand-made masks whose IoU is known exactly: per image, averaged, pooled, edge cases."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nltool.metrics import IoUAccumulator, road_iou


def m(*rows: str) -> np.ndarray:
    """A boolean mask from rows of '#' (road) and '.' (background)."""
    return np.array([[char == "#" for char in row] for row in rows])


@pytest.mark.parametrize(
    ("pred", "truth", "expected"),
    [
        (m("##", ".."), m("#.", "#."), 1 / 3),  # 1 shared pixel, 3 in the union
        (m("##", ".."), m("#.", ".."), 1 / 2),
        (m("#.", ".."), m("..", ".#"), 0.0),
        (m("#.", ".#"), m("#.", ".#"), 1.0),
        (m("##", "##"), m("#.", ".."), 1 / 4),
    ],
)
def test_road_iou_on_2x2_masks(pred: np.ndarray, truth: np.ndarray, expected: float) -> None:
    """Intersection over union of the road pixels, exactly."""
    assert road_iou(pred, truth) == pytest.approx(expected, abs=1e-12)


def test_both_empty_scores_one_and_one_side_empty_scores_zero() -> None:
    """No road predicted where there is none scores 1; missing all road, or inventing some, scores 0."""
    empty, road = m("..", ".."), m("#.", "..")
    assert road_iou(empty, empty) == 1.0
    assert road_iou(empty, road) == 0.0
    assert road_iou(road, empty) == 0.0


def test_bool_and_uint8_encodings_agree() -> None:
    """bool, uint8 0/1 and uint8 0/255 masks of the same roads give the same IoU."""
    pred, truth = m("##.", "#.."), m("#..", "##.")
    as01 = [x.astype(np.uint8) for x in (pred, truth)]
    as255 = [x.astype(np.uint8) * 255 for x in (pred, truth)]
    assert road_iou(pred, truth) == road_iou(*as01) == road_iou(*as255) == pytest.approx(2 / 4)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.array([[0.2, 0.9]]), "dtype float64"),
        (np.array([[0, 128]], np.uint8), "0/1 or only 0/255"),
        (np.array([[0, 1], [255, 0]], np.uint8), "0/1 or only 0/255"),
        (np.zeros((1, 2, 2), bool), "H×W"),
    ],
)
def test_unthresholded_or_misshapen_masks_are_refused(bad: np.ndarray, message: str) -> None:
    """Probabilities, grey values and stacked masks must be thresholded / split by the caller."""
    with pytest.raises(ValueError, match=message):
        road_iou(bad, np.zeros(bad.shape, bool))


def test_shape_mismatch_names_both_shapes() -> None:
    """Prediction and truth of different sizes cannot be compared."""
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(3, 2\)"):
        road_iou(np.zeros((2, 3), bool), np.zeros((3, 2), bool))


def two_images() -> IoUAccumulator:
    """Image a: IoU 1/1; image b: IoU 1/4; so mean (1 + 1/4) / 2 = 0.625, pooled 2/5 = 0.4."""
    acc = IoUAccumulator()
    assert acc.update(m("#.", ".."), m("#.", ".."), "a") == 1.0
    assert acc.update(m("##", "##"), m("#.", ".."), "b") == 0.25
    return acc


def test_mean_and_pooled_iou_differ_as_defined() -> None:
    """Mean weighs each image equally, pooled weighs each pixel equally."""
    acc = two_images()
    assert acc.per_image == {"a": 1.0, "b": 0.25}
    assert acc.mean_iou == pytest.approx(0.625)
    assert acc.pooled_iou == pytest.approx(0.4)
    assert (acc.n_images, acc.intersection, acc.union) == (2, 2, 5)


def test_both_empty_image_raises_the_mean_but_not_the_pooled_iou() -> None:
    """A both-empty image adds a 1.0 to the mean and no pixels to the pooled counts."""
    acc = two_images()
    acc.update(m("..", ".."), m("..", ".."), "c")
    assert acc.mean_iou == pytest.approx((1 + 0.25 + 1) / 3)
    assert acc.pooled_iou == pytest.approx(0.4)
    assert acc.n_both_empty == 1


def test_set_without_any_road_scores_one_pooled() -> None:
    """Pooled IoU over a set where nothing is road in prediction or truth is 1.0."""
    acc = IoUAccumulator()
    acc.update(np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8), "x")
    assert acc.pooled_iou == 1.0 and acc.mean_iou == 1.0


def test_report_is_json_and_labels_both_metrics() -> None:
    """to_dict() round-trips through JSON with each metric's value and definition."""
    report = json.loads(json.dumps(two_images().to_dict()))
    assert report["mean_iou_per_image"]["value"] == pytest.approx(0.625)
    assert "per image" in report["mean_iou_per_image"]["definition"]
    assert report["pooled_iou"]["value"] == pytest.approx(0.4)
    assert "all pixels" in report["pooled_iou"]["definition"]
    assert report["per_image"] == {"a": 1.0, "b": 0.25}
    assert (report["n_images"], report["intersection_pixels"], report["union_pixels"]) == (2, 2, 5)


def test_duplicate_ids_and_empty_accumulator_are_refused() -> None:
    """An image id counted twice, or a metric over no images, is an error rather than a silent number."""
    acc = two_images()
    with pytest.raises(ValueError, match="'a' was already added"):
        acc.update(m("#.", ".."), m("#.", ".."), "a")
    with pytest.raises(ValueError, match="no images"):
        _ = IoUAccumulator().mean_iou
