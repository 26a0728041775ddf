"""Images of every mode, band count, dtype and format nltool may meet, as bytes, for the mode tests.

An :class:`ImageCase` names a layout (a Pillow mode, a GeoTIFF band count and dtype, a 16-bit PNG),
a format, a size, a seed and a truncation point; :func:`encode` turns it into the file's bytes.
The property test draws cases at random; the CLI and TorchServe tests use :func:`table_cases`,
one per layout of the mode table in docs/inference.md, plus a fixed sample of damaged ones.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image

PILLOW_MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "YCbCr", "I;16", "I", "F")
"""Every Pillow mode the readers may meet (docs/inference.md has a row for each)."""
PILLOW_FORMATS: dict[str, tuple[str, ...]] = {
    "PNG": ("1", "L", "LA", "P", "RGB", "RGBA", "I;16"),
    "JPEG": ("1", "L", "RGB", "CMYK", "YCbCr"),
    "TIFF": PILLOW_MODES,
}
"""The modes Pillow writes in each format (PNG has no PA/CMYK/YCbCr/I/F; JPEG no alpha or palette)."""
GEOTIFF_DTYPES = ("uint8", "uint16", "int16", "float32")
PNG16_BANDS = (1, 2, 3, 4)
"""16-bit PNG: grey, grey+alpha, RGB, RGBA (written with rasterio; Pillow cannot write them)."""


@dataclass(frozen=True)
class ImageCase:
    """One input: ``layout`` is a Pillow mode (``"P"``, ``"P+t"`` = palette with a transparent entry)
    for PNG/JPEG/TIFF, ``"<bands>x<dtype>[+alpha|+nodata|+rgb]"`` for GeoTIFF, ``"<bands>x16"`` for
    16-bit PNG. ``keep`` < 1 truncates the file to that fraction of its bytes; ``flip`` inverts the
    byte at that fraction of the file (a damaged header or pixel block), ``None`` leaves it whole."""

    layout: str
    fmt: str
    width: int
    height: int
    seed: int = 0
    keep: float = 1.0
    flip: float | None = None

    @property
    def whole(self) -> bool:
        """Neither truncated nor damaged: the file as its writer made it."""
        return self.keep >= 1 and self.flip is None

    @property
    def label(self) -> str:
        """A short name for test ids and file names."""
        cut = "" if self.keep >= 1 else f"-cut{self.keep:.3f}"
        flip = "" if self.flip is None else f"-flip{self.flip:.3f}"
        name = f"{self.fmt}-{self.layout}-{self.width}x{self.height}{cut}{flip}"
        return name.replace(";", "_").replace("+", "_")

    @property
    def suffix(self) -> str:
        """A file name suffix for the format (nltool reads the bytes, not the name)."""
        return {"PNG": ".png", "PNG16": ".png", "JPEG": ".jpg"}.get(self.fmt, ".tif")


def _smooth(rng: np.random.Generator, height: int, width: int, bands: int) -> np.ndarray:
    """bands×H×W floats in 0-1: gradients plus a little noise (compresses quickly, like imagery)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    phases = rng.random((bands, 2), dtype=np.float32) * 6.0
    waves = [np.sin(xx / (7 + 3 * p0) + p0) * np.cos(yy / (5 + 2 * p1) + p1) for p0, p1 in phases]
    noise = rng.random((bands, height, width), dtype=np.float32) * 0.2
    return np.clip((np.stack(waves) + 1.0) * 0.4 + noise, 0.0, 1.0)


def _alpha(height: int, width: int) -> np.ndarray:
    """Alpha with a transparent (0) top-left quarter, a half-transparent row, opaque elsewhere."""
    alpha = np.full((height, width), 255, np.uint8)
    alpha[: height // 2, : width // 2] = 0
    alpha[height - 1] = 128
    return alpha


def _pillow_image(case: ImageCase, rng: np.random.Generator) -> Image.Image:
    """The case's image in its Pillow mode."""
    mode = case.layout.removesuffix("+t")
    h, w = case.height, case.width
    values = _smooth(rng, h, w, 3)
    rgb = Image.fromarray(np.ascontiguousarray(np.moveaxis(values * 255, 0, -1).astype(np.uint8)))
    if mode == "I;16":
        return Image.fromarray((values[0] * 3900 + 100).astype(np.uint16))
    if mode == "I":
        return Image.fromarray((values[0] * 70000 - 1000).astype(np.int32))
    if mode == "F":
        data = (values[0] * 0.4 + 0.01).astype(np.float32)
        data[h // 2:, w // 2:] = np.nan  # NaN pixels are nodata
        return Image.fromarray(data)
    if mode in ("P", "PA"):
        image = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=32)
        if case.layout == "P+t":
            image.info["transparency"] = int(np.asarray(image)[0, 0])
        if mode == "PA":
            image = image.convert("PA")
            image.putalpha(Image.fromarray(_alpha(h, w)))
        return image
    if mode in ("LA", "RGBA"):
        image = rgb.convert(mode)
        image.putalpha(Image.fromarray(_alpha(h, w)))
        return image
    return rgb.convert(mode)


def _geotiff(case: ImageCase, rng: np.random.Generator) -> bytes:
    """A georeferenced TIFF: ``<bands>x<dtype>`` plus ``+alpha`` (last band), ``+nodata``, ``+rgb``."""
    from rasterio.crs import CRS
    from rasterio.io import MemoryFile
    from rasterio.transform import Affine

    spec, *flags = case.layout.split("+")
    count, dtype = spec.split("x")
    bands = int(count)
    scale = {"uint8": (0, 255), "uint16": (100, 4000), "int16": (-500, 3000), "float32": (0.0, 0.6)}[dtype]
    data = (_smooth(rng, case.height, case.width, bands) * (scale[1] - scale[0]) + scale[0]).astype(dtype)
    profile: dict[str, object] = {
        "driver": "GTiff", "width": case.width, "height": case.height, "count": bands, "dtype": dtype,
        "crs": CRS.from_epsg(32633), "transform": Affine(0.5, 0, 500000, 0, -0.5, 4500000)}
    if "alpha" in flags:
        data[-1] = np.where(_alpha(case.height, case.width) == 0, 0, data[-1].max())
        profile.update(alpha="YES", photometric="RGB" if bands == 4 else "MINISBLACK")
    if "rgb" in flags:
        profile["photometric"] = "RGB"
    if "nodata" in flags:
        profile["nodata"] = 0
        data[:, : case.height // 3] = 0
    if dtype == "float32":
        data[:, -1, :] = np.nan  # non-finite values are nodata
    with MemoryFile() as memory:
        with memory.open(**profile) as dst:
            dst.write(data)
        return bytes(memory.read())


def _png16(case: ImageCase, rng: np.random.Generator) -> bytes:
    """A 16-bit PNG of ``<bands>x16``: grey, grey+alpha, RGB or RGBA."""
    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.io import MemoryFile

    warnings.simplefilter("ignore", NotGeoreferencedWarning)  # a PNG has no georeferencing

    bands = int(case.layout.split("x")[0])
    data = (_smooth(rng, case.height, case.width, bands) * 3900 + 100).astype(np.uint16)
    if bands in (2, 4):
        data[-1] = np.where(_alpha(case.height, case.width) == 0, 0, 65535)
    with MemoryFile() as memory:
        with memory.open(driver="PNG", width=case.width, height=case.height, count=bands, dtype="uint16") as dst:
            dst.write(data)
        return bytes(memory.read())


def encode(case: ImageCase) -> bytes:
    """The bytes of the file ``case`` describes (one byte inverted at ``flip``, truncated to ``keep``)."""
    rng = np.random.default_rng(case.seed)
    if case.fmt == "GeoTIFF":
        data = _geotiff(case, rng)
    elif case.fmt == "PNG16":
        data = _png16(case, rng)
    else:
        buffer = io.BytesIO()
        _pillow_image(case, rng).save(buffer, format=case.fmt)
        data = buffer.getvalue()
    if case.flip is not None:
        at = int(len(data) * case.flip)
        data = data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]
    return data if case.keep >= 1 else data[: int(len(data) * case.keep)]


def pillow_layouts() -> list[tuple[str, str]]:
    """Every (layout, format) Pillow writes: each mode in each format that can hold it, plus a
    palette with a transparent entry in PNG."""
    return [(mode, fmt) for fmt, modes in PILLOW_FORMATS.items() for mode in modes] + [("P+t", "PNG")]


def raster_layouts() -> list[tuple[str, str]]:
    """GeoTIFF band counts 1-5 × dtypes (plain, alpha, nodata, RGB variants) and 16-bit PNGs."""
    layouts = [(f"{n}x{dtype}", "GeoTIFF") for n in range(1, 6) for dtype in GEOTIFF_DTYPES]
    layouts += [(f"{n}x{dtype}+alpha", "GeoTIFF") for n in (2, 4) for dtype in GEOTIFF_DTYPES]
    layouts += [(f"3x{dtype}+rgb+nodata", "GeoTIFF") for dtype in GEOTIFF_DTYPES]
    layouts += [(f"{n}x16", "PNG16") for n in PNG16_BANDS]
    return layouts


REFUSED_LAYOUTS = {f"{n}x{dtype}": "choose the RGB bands" for n in (2, 4, 5) for dtype in GEOTIFF_DTYPES
                   if (n, dtype) != (4, "uint8")}
"""Rasters with 2, 4 or 5 bands and no red/green/blue colour interpretation: nltool cannot guess
which bands are RGB, and says how to choose them (``--bands``). (GDAL writes 4 uint8 bands as
RGBA by default, so those are read as RGB plus alpha.)"""
TOO_SMALL = "nltool needs at least 32×32"
TABLE_SIZE = (45, 37)
"""Width and height of the table cases: odd, not multiples of 32, above the 32-pixel minimum."""


def table_cases(with_rasterio: bool) -> list[ImageCase]:
    """One whole, odd-sized case per layout and format (rasterio layouts only when it is installed)."""
    layouts = pillow_layouts() + (raster_layouts() if with_rasterio else [])
    return [ImageCase(layout, fmt, *TABLE_SIZE, seed=i) for i, (layout, fmt) in enumerate(layouts)]


def expected_refusal(case: ImageCase) -> str | None:
    """The documented message of a case nltool refuses, or None if it must become a mask."""
    if min(case.width, case.height) < 32:
        return TOO_SMALL
    return REFUSED_LAYOUTS.get(case.layout) if case.fmt == "GeoTIFF" else None
