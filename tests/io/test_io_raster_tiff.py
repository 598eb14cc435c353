"""PNG/JPEG/BMP and TIFF reading: bit depth kept, modes, stacks, min-is-white, EXIF."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import tifffile
from PIL import Image

from openmedclip.errors import ImageReadError
from openmedclip.io import read_image, to_model_input
from openmedclip.io.convert import IntensityScalingWarning

RAMP16 = (np.arange(32 * 24, dtype=np.uint32).reshape(32, 24) * 80 + 300).astype(np.uint16)


def test_16bit_png_keeps_values_above_255(tmp_path):
    path = tmp_path / "ramp16.png"
    Image.fromarray(RAMP16).save(path)
    image = read_image(path)
    np.testing.assert_array_equal(image.pixels, RAMP16)
    assert image.pixels.max() > 255 and image.meta["bit_depth"] == 16
    with pytest.warns(IntensityScalingWarning, match="16-bit data"):
        out = np.asarray(to_model_input(image))
    assert out[0, 0, 0] == 0 and out[-1, -1, 0] == 255  # min-max scaled


def test_8bit_png_is_kept_and_converted_unchanged(tmp_path):
    grey = np.arange(256, dtype=np.uint8).reshape(16, 16)
    path = tmp_path / "grey.png"
    Image.fromarray(grey).save(path)
    image = read_image(path)
    assert image.photometric == "MONOCHROME2" and image.meta["bit_depth"] == 8
    out = np.asarray(to_model_input(image))
    assert out.shape == (16, 16, 3)
    for channel in range(3):
        np.testing.assert_array_equal(out[:, :, channel], grey)


def test_rgba_png_drops_alpha(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 10
    path = tmp_path / "rgba.png"
    Image.fromarray(rgba).save(path)
    image = read_image(path)
    assert image.photometric == "RGB" and image.pixels.shape == (8, 8, 3)
    assert (image.pixels[..., 0] == 200).all() and (image.pixels[..., 1:] == 0).all()


def test_bmp_and_jpeg_read(tmp_path):
    grey = np.tile(np.arange(0, 256, 8, dtype=np.uint8), (32, 1))
    Image.fromarray(grey).save(tmp_path / "a.bmp")
    Image.fromarray(grey).convert("RGB").save(tmp_path / "a.jpg", quality=95)
    np.testing.assert_array_equal(read_image(tmp_path / "a.bmp").pixels, grey)
    jpeg = read_image(tmp_path / "a.jpg")
    assert jpeg.meta["format"] == "jpeg" and jpeg.pixels.shape == (32, 32, 3)
    assert np.abs(jpeg.pixels[..., 0] - grey).mean() < 4


def test_exif_orientation_is_applied_and_recorded(tmp_path):
    wide = np.zeros((2, 6), np.uint8)
    wide[0, 0] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = tmp_path / "rotated.png"
    Image.fromarray(wide).save(path, exif=exif)
    image = read_image(path)
    assert image.meta["exif_orientation"] == 6
    np.testing.assert_array_equal(image.pixels, np.rot90(wide, k=-1))


def test_16bit_tiff_keeps_values(tmp_path):
    path = tmp_path / "ramp16.tif"
    tifffile.imwrite(path, RAMP16)
    image = read_image(path)
    np.testing.assert_array_equal(image.pixels, RAMP16)
    assert image.meta["bit_depth"] == 16 and image.meta["format"] == "tiff"


def test_8bit_tiff_and_rgb_tiff(tmp_path):
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8)
    tifffile.imwrite(tmp_path / "grey.tiff", grey)
    rgb = np.stack([grey, grey // 2, grey // 4], axis=-1)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    tifffile.imwrite(tmp_path / "planar.tif", np.moveaxis(rgb, -1, 0), photometric="rgb", planarconfig="separate")
    image = read_image(tmp_path / "grey.tiff")
    np.testing.assert_array_equal(image.pixels, grey)
    assert image.meta["bit_depth"] == 8
    np.testing.assert_array_equal(np.asarray(to_model_input(image))[..., 1], grey)
    for name in ("rgb.tif", "planar.tif"):
        colour = read_image(tmp_path / name)
        assert colour.photometric == "RGB"
        np.testing.assert_array_equal(colour.pixels, rgb)


def test_float_tiff_keeps_values(tmp_path):
    values = np.linspace(-3.5, 7.25, 40, dtype=np.float32).reshape(5, 8)
    tifffile.imwrite(tmp_path / "f.tif", values)
    image = read_image(tmp_path / "f.tif")
    np.testing.assert_array_equal(image.pixels, values)
    assert image.meta["sample_format"] == "ieeefp"


def test_tiff_stack_needs_frame(tmp_path):
    stack = np.stack([np.full((6, 5), 1000 * (i + 1), np.uint16) for i in range(4)])
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, stack, photometric="minisblack")
    with pytest.raises(ImageReadError, match="4 pages; pass frame="):
        read_image(path)
    image = read_image(path, frame=2)
    assert (image.pixels == 3000).all() and image.meta["n_frames"] == 4
    with pytest.raises(ImageReadError, match="out of range"):
        read_image(path, frame=4)


def test_min_is_white_tiff_is_inverted(tmp_path):
    stored = RAMP16 % 4096
    tifffile.imwrite(tmp_path / "white.tif", stored, photometric="miniswhite")
    image = read_image(tmp_path / "white.tif")
    assert image.meta["inverted"] is True
    np.testing.assert_array_equal(image.pixels, 65535 - stored.astype(np.float32))


def test_lzw_tiff_decodes_or_names_imagecodecs(tmp_path):
    path = tmp_path / "lzw.tif"
    Image.fromarray(RAMP16).save(path, compression="tiff_lzw")
    if importlib.util.find_spec("imagecodecs"):
        np.testing.assert_array_equal(read_image(path).pixels, RAMP16)
    else:
        with pytest.raises(ImageReadError, match="imagecodecs"):
            read_image(path)


@pytest.mark.parametrize(("value", "problem"), [(np.nan, "contains NaN pixels"), (np.inf, "contains infinite pixels")])
def test_non_finite_tiff_is_rejected(tmp_path, value, problem):
    values = np.ones((4, 4), np.float32)
    values[1, 2] = value
    path = tmp_path / "bad.tif"
    tifffile.imwrite(path, values)
    with pytest.raises(ImageReadError, match=problem) as caught:
        read_image(path)
    assert str(path) in str(caught.value)


def test_unknown_suffix_falls_back_to_magic_bytes(tmp_path):
    grey = np.arange(16, dtype=np.uint8).reshape(4, 4)
    Image.fromarray(grey).save(tmp_path / "scan_png", format="PNG")
    tifffile.imwrite(tmp_path / "scan.dat", RAMP16)
    png = read_image(tmp_path / "scan_png")
    assert png.meta["format"] == "png"
    np.testing.assert_array_equal(png.pixels, grey)
    np.testing.assert_array_equal(read_image(tmp_path / "scan.dat").pixels, RAMP16)
