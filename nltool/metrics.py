"""Road IoU as the DeepGlobe 2018 road challenge scores it, and the IoU pooled over a whole set.

Sources:
- DeepGlobe 2018 (Demir et al., "DeepGlobe 2018: A Challenge to Parse the Earth through Satellite
  Images", CVPR Workshops 2018), road extraction: pixel-wise IoU of the road class,
  IoU_i = TP_i / (TP_i + FP_i + FN_i) for image i, and the score is the mean of IoU_i over images.
  NL-LinkNet (Wang, Seo, Jeon, IEEE GRSL, Sec. III-A) reports this "mIOU".
- The NL-LinkNet authors' ``evaluate.py`` (github.com/yswang1717/NLLinkNet): per image,
  ``intersection / union`` of the road pixels of prediction and truth, then ``np.mean`` over images.
- Pooled IoU: intersection and union summed over every pixel of the set before dividing, as
  torchmetrics' ``BinaryJaccardIndex`` computes it (micro average over all pixels).

Masks are boolean arrays, or uint8 arrays holding only {0, 1} or only {0, 255}; road is non-zero.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

MEAN_IOU_DEFINITION = (
    "road IoU computed per image, then averaged over images (the DeepGlobe 2018 challenge metric); "
    "an image whose prediction and truth are both empty scores 1.0"
)
POOLED_IOU_DEFINITION = (
    "road intersection over road union, each summed over all pixels of the set "
    "(torchmetrics' micro-averaged binary Jaccard index); 1.0 if the set has no road at all"
)


def road_iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """IoU of the road class for one H×W image; 1.0 when prediction and truth are both empty.

    The both-empty rule is nltool's convention: the authors' ``evaluate.py`` divides by
    a zero union there. Inputs: bool, or uint8 holding only {0, 1} or only {0, 255}.
    """
    intersection, union = road_counts(pred, truth)
    return _ratio(intersection, union)


def road_counts(pred: np.ndarray, truth: np.ndarray) -> tuple[int, int]:
    """(intersection, union) pixel counts of the road class in two H×W masks of the same shape."""
    if pred.shape != truth.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from truth shape {truth.shape}")
    pred_road, truth_road = _road(pred, "prediction"), _road(truth, "truth")
    return int(np.count_nonzero(pred_road & truth_road)), int(np.count_nonzero(pred_road | truth_road))


class IoUAccumulator:
    """Collects images one by one; reports per-image IoU, their mean and the pixel-pooled IoU.

    ``mean_iou`` weighs every image equally (the challenge's score); ``pooled_iou`` weighs every
    pixel equally, so images with much road count more.
    """

    def __init__(self) -> None:
        """Start with no images."""
        self._per_image: dict[str, float] = {}
        self.intersection = 0
        self.union = 0
        self.n_both_empty = 0

    def update(self, pred: np.ndarray, truth: np.ndarray, image_id: str) -> float:
        """Add one image's prediction and truth under a new ``image_id``; returns its IoU."""
        if image_id in self._per_image:
            raise ValueError(f"image {image_id!r} was already added: each image id may appear once")
        intersection, union = road_counts(pred, truth)
        self.intersection += intersection
        self.union += union
        self.n_both_empty += int(union == 0)
        self._per_image[image_id] = _ratio(intersection, union)
        return self._per_image[image_id]

    @property
    def n_images(self) -> int:
        """Number of images added."""
        return len(self._per_image)

    @property
    def per_image(self) -> dict[str, float]:
        """Image id -> road IoU, in the order the images were added (a copy)."""
        return dict(self._per_image)

    @property
    def mean_iou(self) -> float:
        """Mean of the per-image IoUs: the DeepGlobe 2018 challenge's road score."""
        self._require_images()
        return math.fsum(self._per_image.values()) / self.n_images

    @property
    def pooled_iou(self) -> float:
        """Intersection over union summed over all pixels of the set; 1.0 if the set has no road
        (where torchmetrics returns its ``zero_division`` argument, 0 by default)."""
        self._require_images()
        return _ratio(self.intersection, self.union)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for a JSON report: both metrics with their definitions, counts and per-image IoU."""
        return {
            "mean_iou_per_image": {"value": self.mean_iou, "definition": MEAN_IOU_DEFINITION},
            "pooled_iou": {"value": self.pooled_iou, "definition": POOLED_IOU_DEFINITION},
            "n_images": self.n_images,
            "n_both_empty": self.n_both_empty,
            "intersection_pixels": self.intersection,
            "union_pixels": self.union,
            "per_image": self.per_image,
        }

    def _require_images(self) -> None:
        """Refuse to report a metric over an empty set."""
        if not self._per_image:
            raise ValueError("no images were added: call update() with at least one image first")


def _road(mask: np.ndarray, name: str) -> np.ndarray:
    """The H×W boolean road map of a mask: bool as it is, uint8 {0, 1} or {0, 255} as non-zero."""
    if mask.ndim != 2:
        raise ValueError(f"{name} must be an H×W mask, got shape {mask.shape}")
    if mask.dtype == np.bool_:
        return mask
    if mask.dtype != np.uint8:
        raise ValueError(f"{name} must be bool or uint8 (0/1 or 0/255), got dtype {mask.dtype}")
    values = set(np.flatnonzero(np.bincount(mask.ravel(), minlength=2)).tolist())
    if not (values <= {0, 1} or values <= {0, 255}):
        shown = sorted(values)[:6]
        raise ValueError(
            f"{name} must hold only 0/1 or only 0/255, found values {shown}: threshold it first"
        )
    return mask != 0


def _ratio(intersection: int, union: int) -> float:
    """intersection / union, with an empty union (no road in either mask) scoring 1.0."""
    return 1.0 if union == 0 else intersection / union
