"""Any decoded pixel layout -> what the model takes: H×W×3 uint8 RGB plus a valid mask.

One set of rules for every reader (Pillow for PNG/JPEG/plain TIFF, rasterio for TIFF/GeoTIFF);
docs/inference.md has the table of modes and what each becomes:

- palette: expanded through the palette; grayscale and panchromatic: the band repeated three times;
- alpha (an alpha channel, a palette's transparent entries, PNG transparency): alpha 0 is nodata;
- anything that is not 8 bits (16-bit, 32-bit integer, float): each band stretched linearly from
  its 2nd-98th percentile (measured on a decimated sample of its valid pixels) to 0-255, clipped;
  non-finite float values (NaN, ±inf) are nodata.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from nltool.errors import ImageError

STRETCH_PERCENTILES = (2.0, 98.0)
STRETCH_SAMPLE_SIDE = 1024
"""The stretch is measured on a sample of at most about this many pixels a side."""
HIGH_DEPTH_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
"""Single-band Pillow modes of more than 8 bits: stretched, then repeated to three bands."""
ALPHA_MODES = ("LA", "La", "PA", "RGBA", "RGBa")
"""Pillow modes with an alpha channel (``La``/``RGBa`` premultiplied; Pillow undoes that)."""
OPAQUE_MODES = ("1", "L", "P", "RGB", "RGBX", "CMYK", "YCbCr")
"""Pillow modes Pillow itself converts to RGB exactly (bilevel and grey repeated, palette expanded)."""


def sample_step(height: int, width: int) -> int:
    """Decimation factor that brings an image's longer side to at most :data:`STRETCH_SAMPLE_SIDE`."""
    return max(1, math.ceil(max(height, width) / STRETCH_SAMPLE_SIDE))


def stretch_limits(samples: list[np.ndarray]) -> np.ndarray:
    """Per band (low, high): the 2nd and 98th percentiles of that band's valid sample values.

    Non-finite values are ignored; a band with no valid values gets (0, 1), a constant band
    (v, v + 1), so the stretch is always defined.
    """
    limits = np.zeros((len(samples), 2), dtype=np.float64)
    for i, values in enumerate(samples):
        values = np.asarray(values, dtype=np.float64).ravel()
        values = values[np.isfinite(values)]
        if values.size == 0:
            limits[i] = (0.0, 1.0)
            continue
        low, high = np.percentile(values, STRETCH_PERCENTILES)
        limits[i] = (low, high if high > low else low + 1.0)
    return limits


def stretch_to_uint8(data: np.ndarray, limits: np.ndarray) -> np.ndarray:
    """Bands×rows×cols values -> uint8, each band mapped linearly from its (low, high) to 0-255,
    clipped; non-finite values become 0 (the caller marks them nodata)."""
    low, high = limits[:, :1, None], limits[:, 1:, None]
    scaled = (data.astype(np.float64) - low) / (high - low)
    scaled = np.where(np.isfinite(scaled), scaled, 0.0)
    return np.rint(np.clip(scaled, 0.0, 1.0) * 255.0).astype(np.uint8)


def gray_to_rgb(band: np.ndarray) -> np.ndarray:
    """An H×W uint8 band as H×W×3 RGB, the band repeated (grayscale and panchromatic imagery)."""
    return np.ascontiguousarray(np.repeat(band[..., None], 3, axis=-1))


def expand_palette(index: np.ndarray, palette: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Palette indices (H×W) through an N×4 RGBA palette -> (H×W×3 RGB, valid mask or None).

    Indices past the palette's end are nodata; so are entries whose alpha is 0.
    """
    inside = index < len(palette)
    rgba = palette[np.where(inside, index, 0)]
    valid = inside & (rgba[..., 3] > 0)
    return np.ascontiguousarray(rgba[..., :3]), None if valid.all() else valid


def combine_valid(*masks: np.ndarray | None) -> np.ndarray | None:
    """The pixels valid in every given mask (None stands for all valid; the result is None if all are)."""
    present = [mask for mask in masks if mask is not None]
    if not present:
        return None
    valid = np.logical_and.reduce(present) if len(present) > 1 else present[0]
    return None if valid.all() else valid


def from_pillow(image: Image.Image, name: str) -> tuple[np.ndarray, np.ndarray | None]:
    """A decoded Pillow image of any mode -> (H×W×3 uint8 RGB, H×W valid mask or None if all valid).

    Modes Pillow cannot turn into RGB (``HSV``, ``LAB``, ...) are refused with what to do.
    """
    mode = image.mode
    if mode in HIGH_DEPTH_MODES:
        return _high_depth_to_rgb(image)
    if mode in ALPHA_MODES or (mode in OPAQUE_MODES and "transparency" in image.info):
        rgba = np.asarray(image.convert("RGBA"))
        return np.ascontiguousarray(rgba[..., :3]), combine_valid(rgba[..., 3] > 0)
    if mode in OPAQUE_MODES:
        return np.asarray(image.convert("RGB")), None
    raise ImageError(f"{name} has pixel format {mode}, which nltool cannot turn into RGB; "
                     "save it as 8-bit RGB (or grayscale) PNG, JPEG or TIFF")


def _high_depth_to_rgb(image: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """A 16-bit, 32-bit integer or float single-band image: stretched, then repeated to RGB."""
    values = np.asarray(image)
    valid = np.isfinite(values) if values.dtype.kind == "f" else np.ones(values.shape, dtype=bool)
    transparent = image.info.get("transparency")
    if isinstance(transparent, int):  # a PNG tRNS grey value
        valid &= values != transparent
    step = sample_step(*values.shape)
    sample = values[::step, ::step][valid[::step, ::step]]
    band = stretch_to_uint8(values[None], stretch_limits([sample]))[0]
    return gray_to_rgb(band), combine_valid(valid)
