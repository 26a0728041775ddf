"""Reading satellite images and writing masks.

Inputs are recognised by their bytes, not their names: PNG and JPEG go through Pillow; TIFF and
GeoTIFF through rasterio (the ``[geo]`` extra), read window by window so big scenes stream.

What the model gets is 8-bit RGB plus a valid mask, whatever the input's mode, band count or
bit depth; :mod:`nltool.pixels` holds the rules (table in docs/inference.md):

- palette images are expanded; grayscale and panchromatic bands are repeated to three bands;
- alpha 0 (alpha channel, transparent palette entries, PNG transparency) marks nodata (never road);
- bands of more than 8 bits (16-bit, 32-bit, float) are stretched per band: the 2nd-98th percentile
  of the band's valid pixels (measured on a decimated read, at most ~1024 px a side) maps linearly
  to 0-255, clipped. 16-bit colour PNGs need rasterio for this (Pillow would cut them to 8 bits);
- rasters take ``bands`` (1-based, as rasterio counts), defaulting to the bands whose colour
  interpretation is red, green, blue, else the three (or the one) bands that are not alpha;
  other band counts are refused with how to choose;
- GeoTIFF nodata (nodata value, alpha band or internal mask, NaN) is carried through: those pixels
  are never road, and GeoTIFF outputs keep the input's CRS, transform and mask;
- Pillow's decompression-bomb guard stays on, with its limit set to the configured max pixels.

Anything wrong with an input is an :class:`~nltool.errors.ImageError` that names it and says what
to do; no other exception escapes a decoder.
"""

from __future__ import annotations

import io
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from nltool.errors import ImageError
from nltool.inference.config import DEFAULT_MAX_PIXELS, OUTPUT_FORMATS, OutputFormat
from nltool.models.archs import SIZE_MULTIPLE
from nltool.optional import available, require
from nltool.pixels import (
    HIGH_DEPTH_MODES,
    combine_valid,
    expand_palette,
    from_pillow,
    sample_step,
    stretch_limits,
    stretch_to_uint8,
)

SUPPORTED = "PNG, JPEG or TIFF/GeoTIFF"
_MAGIC = {
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"\xff\xd8\xff": "JPEG",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
    b"II+\x00": "TIFF",  # BigTIFF
    b"MM\x00+": "TIFF",
}
_GEOTIFF_TAGS = (33550, 33922, 34264, 34735)  # pixel scale, tiepoint, transformation, geokeys


def threshold_mask(prob: np.ndarray, threshold: float) -> np.ndarray:
    """Road where probability > threshold: uint8 255 (road) / 0 (background), DeepGlobe's encoding."""
    return np.where(prob > threshold, np.uint8(255), np.uint8(0))


def probability_to_uint8(prob: np.ndarray) -> np.ndarray:
    """Probability 0-1 as uint8 0-255 (rounded), the ``prob`` output format."""
    return np.rint(np.clip(prob, 0.0, 1.0) * 255.0).astype(np.uint8)


def check_image_size(width: int, height: int, max_pixels: int, name: str = "image") -> None:
    """Refuse images too small to segment or larger than ``max_pixels`` (before decoding them)."""
    if min(width, height) < SIZE_MULTIPLE:
        raise ImageError(f"{name} is {width}×{height} pixels; nltool needs at least {SIZE_MULTIPLE}×{SIZE_MULTIPLE}")
    if width * height > max_pixels:
        raise ImageError(
            f"{name} is {width}×{height} = {width * height / 1e6:,.1f} megapixels, above the limit of "
            f"{max_pixels / 1e6:,.1f} megapixels; raise --max-pixels if this is intended"
        )


GDAL_CACHE_MB = "256"
"""GDAL's block cache (default 5% of RAM) caps what streaming a huge GeoTIFF keeps in memory;
a GDAL_CACHEMAX set by the user wins."""


def rasterio_module() -> ModuleType | None:
    """rasterio if the ``[geo]`` extra is installed, else None."""
    if not available("rasterio"):
        return None
    os.environ.setdefault("GDAL_CACHEMAX", GDAL_CACHE_MB)
    return require("rasterio", "reading GeoTIFFs")


@dataclass(frozen=True)
class GeoReference:
    """Where a raster sits on the earth: what GeoTIFF outputs copy from their input."""

    crs: Any
    transform: Any


class ImageReader:
    """A decoded or streaming RGB image (a :class:`~nltool.inference.pipeline.RasterSource`)."""

    name: str
    height: int
    width: int
    georef: GeoReference | None = None

    def read_rows(self, y0: int, y1: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Rows ``y0:y1`` as rows×W×3 uint8 RGB, and a rows×W valid mask (None if all valid)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the file (no-op for in-memory images)."""

    def __enter__(self) -> ImageReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PillowReader(ImageReader):
    """PNG / JPEG / plain TIFF decoded whole by Pillow (these formats have no windowed reads)."""

    def __init__(self, image: Image.Image, name: str) -> None:
        self.name = name
        self.width, self.height = image.size
        try:
            image.load()
            self._rgb, self._valid = from_pillow(image, name)
        except ImageError:
            raise
        except Exception as exc:  # Pillow's decoders raise OSError, SyntaxError, EOFError, struct.error, ...
            raise ImageError(f"{name} is truncated or corrupt ({_reason(exc)})") from exc

    def read_rows(self, y0: int, y1: int) -> tuple[np.ndarray, np.ndarray | None]:
        return self._rgb[y0:y1], None if self._valid is None else self._valid[y0:y1]


class RasterioReader(ImageReader):
    """TIFF / GeoTIFF (and 16-bit PNG) through rasterio: the bands that make RGB, read window by
    window; palettes expanded, a single band repeated, non-8-bit bands stretched, nodata kept."""

    def __init__(self, dataset: Any, name: str, bands: tuple[int, int, int] | None, max_pixels: int,
                 memfile: Any = None) -> None:
        self._ds = dataset
        self._memfile = memfile
        self.name = name
        self.width, self.height = dataset.width, dataset.height
        check_image_size(self.width, self.height, max_pixels, name)
        self.bands = self._choose_bands(bands)
        colour = list(dict.fromkeys(self.bands))
        self._order = [colour.index(b) for b in self.bands]
        interp = [ci.name for ci in dataset.colorinterp]
        self._alpha = interp.index("alpha") + 1 if "alpha" in interp else None
        self._read = colour + ([self._alpha] if self._alpha is not None else [])
        dtypes = {dataset.dtypes[b - 1] for b in colour}
        if any(np.dtype(d).kind == "c" for d in dtypes):
            raise ImageError(f"{name} has complex-valued bands ({', '.join(sorted(dtypes))}); nltool reads "
                             "real-valued bands only: convert it to uint8, uint16, int16 or float32 RGB first")
        self._palette = self._palette_of(colour[0]) if len(colour) == 1 else None
        self._float = any(np.dtype(d).kind == "f" for d in dtypes)
        if dataset.crs is not None or not dataset.transform.is_identity:
            self.georef = GeoReference(crs=dataset.crs, transform=dataset.transform)
        self._stretch = None if self._palette is not None or dtypes == {"uint8"} else self._measure_stretch(colour)
        flags = {flag.name for band_flags in dataset.mask_flag_enums for flag in band_flags}
        # nodata values and internal masks come from GDAL's dataset mask; an alpha band is read as a band
        # (GDAL scales 16-bit alpha and ignores signed/float alpha in its mask), alpha 0 being nodata.
        self._dataset_mask = "nodata" in flags or ("per_dataset" in flags and "alpha" not in flags)

    def _choose_bands(self, bands: tuple[int, int, int] | None) -> tuple[int, int, int]:
        """``bands`` if given; else red/green/blue by colour interpretation, else the three non-alpha
        bands, else the one non-alpha band three times (grayscale, panchromatic, palette)."""
        count = self._ds.count
        if bands is not None:
            if len(bands) != 3 or any(not 1 <= b <= count for b in bands):
                listed = ",".join(map(str, bands))
                raise ImageError(f"--bands {listed} does not fit {self.name}, which has bands 1-{count}")
            return bands
        interp = [ci.name for ci in self._ds.colorinterp]
        if all(c in interp for c in ("red", "green", "blue")):
            return interp.index("red") + 1, interp.index("green") + 1, interp.index("blue") + 1
        colour = [i + 1 for i, c in enumerate(interp) if c != "alpha"]
        if len(colour) == 3:
            return colour[0], colour[1], colour[2]
        if len(colour) == 1:
            return colour[0], colour[0], colour[0]
        raise ImageError(
            f"{self.name} has {count} bands ({', '.join(interp)}) and no red/green/blue colour interpretation; "
            "choose the RGB bands with nltool predict --bands, e.g. --bands 3,2,1 (1-based; --bands 1,1,1 "
            "for one grey band), or save the image as 3-band RGB"
        )

    def _palette_of(self, band: int) -> np.ndarray | None:
        """The N×4 uint8 RGBA palette of a palette band (GDAL colour table), else None."""
        if self._ds.colorinterp[band - 1].name != "palette":
            return None
        table = self._ds.colormap(band)
        palette = np.zeros((max(table) + 1, 4), dtype=np.uint8)
        for index, rgba in table.items():
            palette[index] = rgba
        return palette

    def _measure_stretch(self, colour: list[int]) -> np.ndarray:
        """Per colour band, (low, high) from the 2nd/98th percentiles of a decimated read of valid pixels."""
        step = sample_step(self.height, self.width)
        shape = (len(self._read), max(1, self.height // step), max(1, self.width // step))
        data = self._ds.read(self._read, out_shape=shape, masked=True)
        keep = ~np.ma.getmaskarray(data)
        if self._alpha is not None:
            keep &= data[-1].filled(0) > 0
        return stretch_limits([np.asarray(band)[kept] for band, kept in zip(data[:len(colour)], keep, strict=False)])

    def read_rows(self, y0: int, y1: int) -> tuple[np.ndarray, np.ndarray | None]:
        from rasterio.windows import Window

        window = Window(0, y0, self.width, y1 - y0)
        try:
            data = self._ds.read(self._read, window=window)
            valid = self._ds.dataset_mask(window=window) > 0 if self._dataset_mask else None
        except Exception as exc:  # rasterio raises RasterioIOError / CPLE_* for damaged blocks
            raise ImageError(f"{self.name} is truncated or corrupt near rows {y0}-{y1} ({_reason(exc)})") from exc
        if self._alpha is not None:
            valid = combine_valid(valid, data[-1] > 0)
            data = data[:-1]
        if self._float:
            valid = combine_valid(valid, np.isfinite(data).all(axis=0))
        if self._palette is not None:
            rgb, opaque = expand_palette(data[0], self._palette)
            return rgb, combine_valid(valid, opaque)
        if self._stretch is not None:
            data = stretch_to_uint8(data, self._stretch)
        rgb = np.ascontiguousarray(np.moveaxis(data[self._order], 0, -1), dtype=np.uint8)
        return rgb, valid

    def close(self) -> None:
        self._ds.close()
        if self._memfile is not None:
            self._memfile.close()


def _reason(exc: BaseException) -> str:
    """An exception as one short line for a user message: its first line, or its type if empty."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _read_header(source: Path | bytes, name: str) -> bytes:
    if isinstance(source, bytes):
        head = source[:16]
    else:
        if not source.exists():
            raise ImageError(f"input not found: {source}")
        if not source.is_file():
            raise ImageError(f"input is not a file: {source}")
        with source.open("rb") as f:
            head = f.read(16)
    if not head:
        raise ImageError(f"{name} is empty (0 bytes)")
    return head


def probe_format(source: Path | bytes, name: str | None = None) -> str:
    """``"PNG"``, ``"JPEG"`` or ``"TIFF"`` from the first bytes; an :class:`ImageError` otherwise.

    Cheap (reads 16 bytes): lets a batch job reject missing, empty or non-image inputs up front.
    """
    label = name or (str(source) if isinstance(source, Path) else "request body")
    return _sniff(_read_header(source, label), label)


def _sniff(head: bytes, name: str) -> str:
    for magic, kind in _MAGIC.items():
        if head.startswith(magic):
            return kind
    raise ImageError(f"{name} is not a {SUPPORTED} image (it starts with {head[:8]!r})")


def _open_pillow(source: Path | bytes, name: str, max_pixels: int) -> ImageFile.ImageFile:
    Image.MAX_IMAGE_PIXELS = max_pixels  # Pillow's bomb guard: errors above twice this, warns above it
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own check below is clearer
            image = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{name} is too large to decode safely ({exc}); raise --max-pixels if intended") from exc
    except UnidentifiedImageError as exc:
        raise ImageError(f"{name} is not a readable {SUPPORTED} image") from exc
    except Exception as exc:  # a damaged header: OSError, SyntaxError, EOFError, struct.error, ...
        raise ImageError(f"{name} is truncated or corrupt ({_reason(exc)})") from exc
    check_image_size(image.width, image.height, max_pixels, name)
    return image


def _open_rasterio(rasterio: ModuleType, source: Path | bytes, name: str, bands: tuple[int, int, int] | None,
                   max_pixels: int) -> RasterioReader:
    memfile = None
    try:
        with warnings.catch_warnings():  # a plain TIFF or PNG has no georeferencing: that is expected
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            if isinstance(source, bytes):
                memfile = rasterio.MemoryFile(source)
                dataset = memfile.open()
            else:
                dataset = rasterio.open(source)
    except Exception as exc:  # RasterioIOError and GDAL's CPLE_* errors
        if memfile is not None:
            memfile.close()
        raise ImageError(f"{name} is truncated or corrupt: GDAL cannot open it ({_reason(exc)})") from exc
    try:
        return RasterioReader(dataset, name, bands, max_pixels, memfile)
    except BaseException as exc:
        dataset.close()
        if memfile is not None:
            memfile.close()
        if isinstance(exc, ImageError) or not isinstance(exc, Exception):
            raise
        # damaged blocks met while measuring the stretch, a broken colour table, ...
        raise ImageError(f"{name} is truncated or corrupt ({_reason(exc)})") from exc


def _sixteen_bits_per_channel(image: ImageFile.ImageFile) -> bool:
    """Whether a PNG holds 16-bit colour or grey+alpha, which Pillow would cut to 8 bits."""
    return image.mode not in HIGH_DEPTH_MODES and any(";16" in str(tile.args) for tile in image.tile)


def open_image(
    source: str | Path | bytes,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    bands: tuple[int, int, int] | None = None,
    name: str | None = None,
) -> ImageReader:
    """Open a file or in-memory bytes as an RGB :class:`ImageReader`, checking format and size first.

    The one reader of input imagery: predict, evaluate, training and the TorchServe handler all
    read through it. Every problem is an :class:`ImageError` naming the input and saying what to
    do: missing or empty file, bytes that are not an image, a truncated image, a pixel format
    nltool cannot use, an absurd size.
    """
    if not isinstance(source, bytes):
        source = Path(source)
    label = name or (str(source) if isinstance(source, Path) else "request body")
    kind = probe_format(source, label)
    rasterio = rasterio_module()
    if kind == "TIFF" and rasterio is not None:
        return _open_rasterio(rasterio, source, label, bands, max_pixels)
    image = _open_pillow(source, label, max_pixels)
    with image:
        if kind == "TIFF" and any(tag in getattr(image, "tag_v2", {}) for tag in _GEOTIFF_TAGS):
            raise ImageError(f"{label} is a GeoTIFF; install rasterio (pip install 'nltool[geo]') "
                             "to keep its georeferencing")
        if kind == "PNG" and _sixteen_bits_per_channel(image):
            if rasterio is None:
                raise ImageError(f"{label} has 16 bits per colour channel, which Pillow cannot read in full; "
                                 "install rasterio (pip install 'nltool[geo]') to read it with the 16-bit stretch")
            return _open_rasterio(rasterio, source, label, bands, max_pixels)
        if bands is not None:
            raise ImageError(f"--bands applies to multi-band rasters read with rasterio, not to {kind} {label}")
        return PillowReader(image, label)


def read_rgb(
    source: str | Path | bytes,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    bands: tuple[int, int, int] | None = None,
    name: str | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """A whole image in memory through :func:`open_image`: (H×W×3 uint8 RGB, H×W valid mask or
    None if every pixel is valid). For labelled scenes; big scenes stream with :func:`open_image`."""
    with open_image(source, max_pixels=max_pixels, bands=bands, name=name) as reader:
        return reader.read_rows(0, reader.height)


@dataclass(frozen=True)
class ImageHeader:
    """An image's size and georeferencing, known without decoding its pixels."""

    width: int
    height: int
    georef: GeoReference | None = None


def read_header(path: Path, *, max_pixels: int = DEFAULT_MAX_PIXELS,
                bands: tuple[int, int, int] | None = None) -> ImageHeader:
    """Size and georeferencing of an image file, reading only its header: what a batch driver needs
    to plan and write a scene whose pixels are read elsewhere (problems raise :class:`ImageError`)."""
    if probe_format(path) == "TIFF":
        with open_image(path, max_pixels=max_pixels, bands=bands) as reader:  # rasterio reads lazily
            return ImageHeader(reader.width, reader.height, reader.georef)
    with _open_pillow(path, str(path), max_pixels) as image:  # PNG/JPEG: Pillow reads the header only
        return ImageHeader(image.width, image.height)


class MaskWriter:
    """A :class:`~nltool.inference.pipeline.ProbabilitySink` that writes one output file.

    ``png``: mask, 255 road / 0 background. ``prob``: probability as uint8 0-255 PNG. ``tif``: the
    mask as GeoTIFF with the input's CRS, transform and nodata mask, streamed window by window
    (needs rasterio), or a plain TIFF for inputs without georeferencing. Write it to a temporary
    path (see :func:`nltool.fileio.atomic_path`) and call :meth:`close` to finish the file.
    """

    def __init__(self, path: Path, fmt: OutputFormat, threshold: float, height: int, width: int,
                 georef: GeoReference | None = None) -> None:
        if fmt not in OUTPUT_FORMATS:
            raise ImageError(f"unknown output format {fmt!r}; choose one of {', '.join(OUTPUT_FORMATS)}")
        self.path, self.fmt, self.threshold = path, fmt, threshold
        self.road_pixels = 0
        self._pixels = height * width
        self.encode_seconds = 0.0
        """Seconds spent encoding: thresholding rows plus finishing the file (reported by serving)."""
        self._dataset = None
        self._buffer: np.ndarray | None = None
        if fmt == "tif" and georef is not None:
            self._dataset = self._open_geotiff(path, height, width, georef)
        else:
            self._buffer = np.zeros((height, width), dtype=np.uint8)

    @staticmethod
    def _open_geotiff(path: Path, height: int, width: int, georef: GeoReference) -> Any:
        rasterio = rasterio_module()
        if rasterio is None:  # a georeferenced input implies rasterio read it
            raise ImageError("writing GeoTIFF needs rasterio: pip install 'nltool[geo]'")
        profile = {"driver": "GTiff", "height": height, "width": width, "count": 1, "dtype": "uint8",
                   "crs": georef.crs, "transform": georef.transform, "compress": "deflate",
                   "tiled": height >= 256 and width >= 256, "BIGTIFF": "IF_SAFER"}
        if profile["tiled"]:
            profile.update(blockxsize=256, blockysize=256)
        with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
            return rasterio.open(path, "w", **profile)

    def encode(self, prob: np.ndarray) -> np.ndarray:
        """The uint8 pixels this format stores for a block of probabilities."""
        return probability_to_uint8(prob) if self.fmt == "prob" else threshold_mask(prob, self.threshold)

    @property
    def road_fraction(self) -> float:
        """Share of the image's pixels above the threshold (for ``prob`` too: what the mask would be)."""
        return self.road_pixels / self._pixels

    def write_rows(self, y0: int, prob: np.ndarray, valid: np.ndarray | None) -> None:
        started = time.perf_counter()
        self.road_pixels += int(np.count_nonzero(prob > self.threshold))
        pixels = self.encode(prob)
        if self._buffer is not None:
            self._buffer[y0:y0 + pixels.shape[0]] = pixels
        else:
            from rasterio.windows import Window

            assert self._dataset is not None  # a GeoTIFF writer has no buffer
            window = Window(0, y0, pixels.shape[1], pixels.shape[0])
            self._dataset.write(pixels, 1, window=window)
            if valid is not None:
                self._dataset.write_mask(np.where(valid, np.uint8(255), np.uint8(0)), window=window)
        self.encode_seconds += time.perf_counter() - started

    def discard(self) -> None:
        """Abandon the output after a failure: release the file without finishing it."""
        if self._dataset is not None:
            self._dataset.close()
        self._buffer = None

    def close(self) -> None:
        """Finish the file (flush the GeoTIFF, or encode the PNG/TIFF buffer)."""
        started = time.perf_counter()
        self._finish()
        self.encode_seconds += time.perf_counter() - started

    def _finish(self) -> None:
        if self._dataset is not None:
            self._dataset.close()
        elif self._buffer is not None:
            fmt = "TIFF" if self.fmt == "tif" else "PNG"
            options = {"compression": "tiff_deflate"} if fmt == "TIFF" else {"optimize": False}
            Image.fromarray(self._buffer, mode="L").save(self.path, format=fmt, **options)


def encode_png(rgb: np.ndarray) -> bytes:
    """An H×W×3 uint8 RGB array as PNG bytes (what a client sends a server)."""
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


def output_name(input_path: Path, fmt: OutputFormat) -> str:
    """``<stem>_mask.png``, ``<stem>_mask.tif`` or ``<stem>_prob.png``; a DeepGlobe ``<id>_sat`` stem
    becomes ``<id>``, so ``<id>_sat.jpg`` predicts to ``<id>_mask.png`` as in the dataset's layout."""
    stem = input_path.stem.removesuffix("_sat") or input_path.stem
    return f"{stem}_{'prob' if fmt == 'prob' else 'mask'}.{'tif' if fmt == 'tif' else 'png'}"
