"""Imagery I/O: formats, pixel-format rules, bad inputs, GeoTIFF windows and georeferencing."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nltool.errors import ImageError
from nltool.imagery import MaskWriter, open_image, read_rgb

rasterio = pytest.importorskip("rasterio", reason="rasterio (the [geo] extra) is not installed")
from rasterio.crs import CRS  # noqa: E402
from rasterio.transform import from_origin  # noqa: E402


def _rgb(h: int = 64, w: int = 80, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose IHDR claims width×height, with no pixel data (a decompression-bomb header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


def test_png_and_jpeg_read_as_rgb(tmp_path: Path) -> None:
    rgb = _rgb()
    Image.fromarray(rgb).save(tmp_path / "a.png")
    yy, xx = np.mgrid[0:64, 0:80]
    smooth = np.stack([xx * 3, yy * 3, xx + yy], -1).astype(np.uint8)  # JPEG keeps smooth images close
    Image.fromarray(smooth).save(tmp_path / "a.jpg", quality=95)
    with open_image(tmp_path / "a.png") as png:
        data, valid = png.read_rows(0, png.height)
        assert (png.width, png.height) == (80, 64) and valid is None and png.georef is None
        assert np.array_equal(data, rgb)
    with open_image(tmp_path / "a.jpg") as jpg:
        data, _ = jpg.read_rows(10, 20)
        assert data.shape == (10, 80, 3) and np.abs(data.astype(int) - smooth[10:20]).mean() < 2


def test_rgba_alpha_zero_is_nodata(tmp_path: Path) -> None:
    rgba = np.dstack([_rgb(), np.full((64, 80), 255, np.uint8)])
    rgba[:8, :, 3] = 0
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    with open_image(tmp_path / "a.png") as reader:
        data, valid = reader.read_rows(0, 64)
    assert data.shape == (64, 80, 3) and valid is not None
    assert not valid[:8].any() and valid[8:].all()


def _stretched(band: np.ndarray) -> np.ndarray:
    """The documented stretch of one band: its 2nd-98th percentile (finite values) to 0-255."""
    finite = band[np.isfinite(band)].astype(float)
    low, high = np.percentile(finite, (2, 98))
    scaled = np.nan_to_num((band.astype(float) - low) / (high - low), nan=0.0)
    return np.rint(np.clip(scaled, 0, 1) * 255).astype(np.uint8)


def test_grayscale_is_repeated_into_three_bands(tmp_path: Path) -> None:
    grey = _rgb()[..., 0]
    Image.fromarray(grey).save(tmp_path / "g.png")
    rgb, valid = read_rgb(tmp_path / "g.png")
    assert valid is None and all(np.array_equal(rgb[..., c], grey) for c in range(3))


def test_palette_png_is_expanded_and_its_transparent_entry_is_nodata(tmp_path: Path) -> None:
    image = Image.fromarray(_rgb()).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    index = np.asarray(image)
    image.save(tmp_path / "p.png")
    rgb, valid = read_rgb(tmp_path / "p.png")
    assert valid is None and np.array_equal(rgb, np.asarray(image.convert("RGB")))
    image.save(tmp_path / "pt.png", transparency=int(index[0, 0]))
    rgb, valid = read_rgb(tmp_path / "pt.png")
    assert valid is not None and np.array_equal(valid, index != index[0, 0])
    assert np.array_equal(rgb[valid], np.asarray(image.convert("RGB"))[valid])


def test_sixteen_bit_grey_png_is_stretched_and_repeated(tmp_path: Path) -> None:
    grey = np.random.default_rng(2).integers(100, 4000, size=(50, 70), dtype=np.uint16)
    Image.fromarray(grey).save(tmp_path / "g16.png")
    rgb, valid = read_rgb(tmp_path / "g16.png")
    assert valid is None and all(np.array_equal(rgb[..., c], _stretched(grey)) for c in range(3))


def test_without_rasterio_pillow_reads_float_tiffs_and_refuses_what_it_cannot(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("nltool.imagery.rasterio_module", lambda: None)  # as without the [geo] extra
    band = np.random.default_rng(3).random((40, 50)).astype(np.float32)
    band[:5] = np.nan
    Image.fromarray(band).save(tmp_path / "f.tif")
    rgb, valid = read_rgb(tmp_path / "f.tif")
    assert valid is not None and not valid[:5].any() and valid[5:].all()
    assert np.array_equal(rgb[5:, :, 1], _stretched(band)[5:])
    with rasterio.open(tmp_path / "rgb16.png", "w", driver="PNG", width=40, height=40, count=3,
                       dtype="uint16") as dst:
        dst.write(np.full((3, 40, 40), 1000, np.uint16))
    with pytest.raises(ImageError, match="16 bits per colour channel, .*pip install 'nltool\\[geo\\]'"):
        open_image(tmp_path / "rgb16.png")
    _geotiff(tmp_path / "geo.tif", np.zeros((3, 40, 40), np.uint8))
    with pytest.raises(ImageError, match="is a GeoTIFF; install rasterio"):
        open_image(tmp_path / "geo.tif")


def test_modes_pillow_cannot_convert_are_refused_with_what_to_do(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("nltool.imagery.rasterio_module", lambda: None)
    Image.fromarray(_rgb()).convert("LAB").save(tmp_path / "lab.tif")
    with pytest.raises(ImageError, match="pixel format LAB, which nltool cannot turn into RGB; save it as 8-bit RGB"):
        open_image(tmp_path / "lab.tif")


@pytest.mark.parametrize("name,content,message", [
    ("empty.png", b"", "is empty"),
    ("notes.jpg", b"this is a text file, not a picture\n", "is not a PNG, JPEG or TIFF/GeoTIFF image"),
])
def test_empty_and_non_image_files(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ImageError, match=message):
        open_image(tmp_path / name)


def test_truncated_png(tmp_path: Path) -> None:
    Image.fromarray(_rgb(256, 256)).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="cut.png is truncated or corrupt"):
        open_image(tmp_path / "cut.png")


def test_one_pixel_image(tmp_path: Path) -> None:
    Image.new("RGB", (1, 1)).save(tmp_path / "dot.png")
    with pytest.raises(ImageError, match="1×1 pixels; nltool needs at least 32×32"):
        open_image(tmp_path / "dot.png")


def test_absurd_header_is_refused_before_decoding(tmp_path: Path) -> None:
    _png_header_only(tmp_path / "huge.png", 100_000, 100_000)
    with pytest.raises(ImageError, match="huge.png is too large to decode safely"):
        open_image(tmp_path / "huge.png")
    _png_header_only(tmp_path / "big.png", 30_000, 30_000)  # above the limit, below Pillow's 2× bomb error
    with pytest.raises(ImageError, match="900.0 megapixels, above the limit of 500.0"):
        open_image(tmp_path / "big.png")


def _geotiff(path: Path, data: np.ndarray, **extra: object) -> None:
    count, h, w = data.shape
    profile = {"driver": "GTiff", "height": h, "width": w, "count": count, "dtype": data.dtype.name,
               "crs": CRS.from_epsg(32633), "transform": from_origin(500000, 4500000, 0.5, 0.5), **extra}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)


def test_geotiff_reads_windows_and_keeps_georeferencing(tmp_path: Path) -> None:
    data = np.moveaxis(_rgb(100, 120), -1, 0)
    _geotiff(tmp_path / "scene.tif", data)
    with open_image(tmp_path / "scene.tif") as reader:
        rows, valid = reader.read_rows(30, 50)
        assert reader.georef is not None and reader.georef.crs == CRS.from_epsg(32633)
        assert np.array_equal(rows, np.moveaxis(data, 0, -1)[30:50]) and valid is None


def test_geotiff_nodata_value_becomes_invalid(tmp_path: Path) -> None:
    data = np.moveaxis(_rgb(64, 64), -1, 0).copy()
    data[:, :, :10] = 0
    _geotiff(tmp_path / "nd.tif", data, nodata=0)
    with open_image(tmp_path / "nd.tif") as reader:
        _, valid = reader.read_rows(0, 64)
    assert valid is not None and not valid[:, :10].any() and valid[:, 10:].mean() > 0.99


def test_sixteen_bit_bands_are_stretched_by_percentiles(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    data = rng.integers(100, 4000, size=(3, 64, 64), dtype=np.uint16)  # 12-bit range, as satellites give
    _geotiff(tmp_path / "u16.tif", data)
    with open_image(tmp_path / "u16.tif") as reader:
        rgb, _ = reader.read_rows(0, 64)
    assert rgb.dtype == np.uint8
    low, high = np.percentile(data[0].astype(float), (2, 98))
    expected = np.rint(np.clip((data[0] - low) / (high - low), 0, 1) * 255)
    assert np.array_equal(rgb[..., 0], expected.astype(np.uint8))
    assert rgb.max() == 255 and rgb.min() == 0


def test_multiband_raster_needs_bands_and_takes_them(tmp_path: Path) -> None:
    data = np.stack([np.full((64, 64), v, np.uint8) for v in (10, 20, 30, 40)])
    _geotiff(tmp_path / "four.tif", data, photometric="MINISBLACK")
    with pytest.raises(ImageError, match="4 bands .*--bands"):
        open_image(tmp_path / "four.tif")
    with open_image(tmp_path / "four.tif", bands=(3, 2, 1)) as reader:
        rgb, _ = reader.read_rows(0, 1)
    assert rgb[0, 0].tolist() == [30, 20, 10]
    with pytest.raises(ImageError, match="--bands 5,2,1 does not fit"):
        open_image(tmp_path / "four.tif", bands=(5, 2, 1))


def test_geotiff_mask_writer_copies_crs_transform_and_nodata(tmp_path: Path) -> None:
    data = np.moveaxis(_rgb(300, 260), -1, 0).copy()
    data[:, :20] = 0
    _geotiff(tmp_path / "in.tif", data, nodata=0)
    with open_image(tmp_path / "in.tif") as reader:
        writer = MaskWriter(tmp_path / "out.tif", "tif", 0.5, reader.height, reader.width, reader.georef)
        for y0 in range(0, 300, 100):
            _rows, valid = reader.read_rows(y0, y0 + 100)
            writer.write_rows(y0, np.where(valid, 0.9, 0.0).astype(np.float32), valid)
        writer.close()
    with rasterio.open(tmp_path / "out.tif") as out, rasterio.open(tmp_path / "in.tif") as src:
        assert (out.crs, out.transform, out.shape) == (src.crs, src.transform, src.shape)
        mask = out.read(1)
        assert (mask[:20] == 0).all() and (mask[20:] == 255).all()
        assert (out.dataset_mask()[:20] == 0).all() and (out.dataset_mask()[20:] == 255).all()


def test_sixteen_bit_rgb_png_is_read_by_rasterio_and_stretched(tmp_path: Path) -> None:
    data = np.random.default_rng(4).integers(100, 4000, size=(4, 40, 48), dtype=np.uint16)
    data[3] = 65535
    data[3, :10] = 0  # alpha 0: nodata
    with rasterio.open(tmp_path / "rgba16.png", "w", driver="PNG", width=48, height=40, count=4,
                       dtype="uint16") as dst:
        dst.write(data)
    rgb, valid = read_rgb(tmp_path / "rgba16.png")
    assert valid is not None and not valid[:10].any() and valid[10:].all()
    low, high = np.percentile(data[0][10:].astype(float), (2, 98))  # valid pixels only
    expected = np.rint(np.clip((data[0] - low) / (high - low), 0, 1) * 255).astype(np.uint8)
    assert np.array_equal(rgb[10:, :, 0], expected[10:])


def test_single_band_and_grey_alpha_rasters_are_repeated_with_alpha_as_nodata(tmp_path: Path) -> None:
    grey = np.moveaxis(_rgb(), -1, 0)[:1]
    _geotiff(tmp_path / "pan.tif", grey)
    rgb, valid = read_rgb(tmp_path / "pan.tif")
    assert valid is None and all(np.array_equal(rgb[..., c], grey[0]) for c in range(3))
    data = np.stack([np.arange(64 * 80, dtype=np.int16).reshape(64, 80), np.full((64, 80), 1, np.int16)])
    data[1, :, :7] = 0  # int16 alpha: GDAL's mask ignores it; nltool reads it as a band
    _geotiff(tmp_path / "ga.tif", data, photometric="MINISBLACK", alpha="YES")
    rgb, valid = read_rgb(tmp_path / "ga.tif")
    assert valid is not None and not valid[:, :7].any() and valid[:, 7:].all()
    assert np.array_equal(rgb[..., 0], rgb[..., 2]) and rgb.max() == 255 and rgb.min() == 0


def test_palette_raster_is_expanded_through_its_colour_table(tmp_path: Path) -> None:
    index = (np.arange(64 * 80).reshape(1, 64, 80) % 3).astype(np.uint8)
    _geotiff(tmp_path / "pal.tif", index, photometric="PALETTE")
    with rasterio.open(tmp_path / "pal.tif", "r+") as dst:
        dst.write_colormap(1, {0: (255, 0, 0, 255), 1: (0, 255, 0, 255), 2: (0, 0, 255, 255)})
    rgb, valid = read_rgb(tmp_path / "pal.tif")
    assert valid is None and rgb[0, :3].tolist() == [[255, 0, 0], [0, 255, 0], [0, 0, 255]]


def test_float_raster_nan_is_nodata_and_ignored_by_the_stretch(tmp_path: Path) -> None:
    data = np.random.default_rng(5).random((3, 64, 64)).astype(np.float32)
    data[:, :4] = np.nan
    _geotiff(tmp_path / "f.tif", data, photometric="RGB")
    rgb, valid = read_rgb(tmp_path / "f.tif")
    assert valid is not None and not valid[:4].any() and valid[4:].all()
    assert np.array_equal(rgb[4:, :, 2], _stretched(data[2])[4:])


@pytest.mark.parametrize("count,extra,message", [
    (2, {}, "has 2 bands \\(gray, undefined\\) .*choose the RGB bands with nltool predict --bands"),
    (1, {"dtype": "complex64"}, "has complex-valued bands \\(complex64\\); .*convert it to"),
])
def test_rasters_nltool_cannot_map_to_rgb_are_refused(tmp_path: Path, count: int, extra: dict, message: str) -> None:
    _geotiff(tmp_path / "x.tif", np.ones((count, 40, 40), extra.get("dtype", "uint8")))
    with pytest.raises(ImageError, match=message):
        open_image(tmp_path / "x.tif")
