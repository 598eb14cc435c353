"""DICOM reading: Modality LUT, windows, MONOCHROME1, frames, compressed syntaxes, colour."""

from __future__ import annotations

import io
from types import SimpleNamespace

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.encaps import encapsulate
from pydicom.pixels import pixel_array
from pydicom.uid import JPEGBaseline8Bit

import openmedclip.io.dicom as dicom_module
from openmedclip.errors import ImageReadError
from openmedclip.io import read_image, to_model_input
from openmedclip.io.convert import IntensityScalingWarning


def test_ct_small_is_in_hounsfield_units(pydicom_file):
    path = pydicom_file("CT_small.dcm")
    ds = pydicom.dcmread(path)
    image = read_image(path)
    expected = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_array_equal(image.pixels, expected.astype(np.float32))
    assert image.pixels.dtype == np.float32
    assert image.modality == "CT"
    assert image.meta["rescale_intercept"] == -1024.0
    assert np.percentile(image.pixels, 1) < -800  # air / lung
    assert -200 < np.median(image.pixels) < 200  # soft tissue
    assert image.meta["spacing"] == pytest.approx((0.661468, 0.661468))


def test_lung_window_maps_hounsfield_units_as_expected(pydicom_file):
    path = pydicom_file("CT_small.dcm")
    lung = read_image(path, window="Lung")
    assert lung.window == (-600.0, 1500.0)
    assert lung.meta["window_source"] == "user"
    out = np.asarray(to_model_input(lung))[:, :, 0].astype(int)
    expected = np.rint(np.clip((lung.pixels + 1350.0) / 1500.0, 0, 1) * 255)
    assert np.abs(out - expected).max() <= 1
    dense = lung.pixels >= 150
    assert dense.any() and (out[dense] == 255).all()
    bone = np.asarray(to_model_input(read_image(path, window="bone")))[:, :, 0]
    assert (bone[dense] < 255).any()
    with pytest.warns(IntensityScalingWarning, match="CT data"):
        unwindowed = np.asarray(to_model_input(read_image(path)))[:, :, 0]
    assert not np.array_equal(unwindowed, out)


def test_mr_small_keeps_header_window(pydicom_file):
    path = pydicom_file("MR_small.dcm")
    image = read_image(path)
    np.testing.assert_array_equal(image.pixels, pydicom.dcmread(path).pixel_array)
    assert image.modality == "MR"
    assert image.window == (600.0, 1600.0)
    assert image.meta["window_source"] == "header"
    out = np.asarray(to_model_input(image))[:, :, 0].astype(int)
    expected = np.rint(np.clip((image.pixels - (600 - 800)) / 1600, 0, 1) * 255)
    assert np.abs(out - expected).max() <= 1


@pytest.mark.parametrize("name", ["MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm"])
def test_lossless_compressed_syntaxes_decode_exactly(pydicom_file, name):
    reference = read_image(pydicom_file("MR_small.dcm")).pixels
    np.testing.assert_array_equal(read_image(pydicom_file(name)).pixels, reference)


def test_jpeg2000_dicom_decodes(pydicom_file):
    image = read_image(pydicom_file("JPEG2000.dcm"))
    assert image.pixels.shape == (1024, 256)
    assert "JPEG 2000" in image.meta["transfer_syntax"]
    assert image.pixels.std() > 0


def test_jpeg_lossless_dicom_decodes(pydicom_data_file):
    image = read_image(pydicom_data_file("JPGLosslessP14SV1_1s_1f_8b.dcm"))
    assert image.pixels.shape == (768, 1024)
    assert "JPEG Lossless" in image.meta["transfer_syntax"]
    assert image.pixels.std() > 0


def test_jpeg_baseline_dicom_decodes(tmp_path, dicom_dataset):
    grey = np.add.outer(np.arange(64), np.arange(48)).astype(np.uint8) * 2
    buffer = io.BytesIO()
    Image.fromarray(grey).save(buffer, format="JPEG", quality=95)
    ds = dicom_dataset(grey, "MONOCHROME2", 8)
    ds.PixelData = encapsulate([buffer.getvalue()])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    path = tmp_path / "baseline.dcm"
    ds.save_as(path, enforce_file_format=True)
    image = read_image(path)
    assert "JPEG Baseline" in image.meta["transfer_syntax"]
    assert image.pixels.shape == grey.shape
    assert np.abs(image.pixels - grey).mean() < 3


def test_missing_decoder_names_syntax_and_package(pydicom_file, monkeypatch):
    absent = SimpleNamespace(is_available=False, missing_dependencies=["pylibjpeg-openjpeg"])
    monkeypatch.setattr(dicom_module, "get_decoder", lambda syntax: absent)
    with pytest.raises(ImageReadError) as caught:
        read_image(pydicom_file("JPEG2000.dcm"))
    message = str(caught.value)
    assert "JPEG 2000 Image Compression" in message and "1.2.840.10008.1.2.4.91" in message
    assert "pylibjpeg-openjpeg" in message and "\n" not in message


def test_multi_frame_default_middle_and_choice(write_dicom):
    frames = np.stack([np.full((4, 3), 100 * i, np.uint16) for i in range(5)])
    path = write_dicom("multi.dcm", frames)
    default = read_image(path)
    assert default.meta["frame"] == 2 and default.meta["n_frames"] == 5
    assert (default.pixels == 200).all()
    assert (read_image(path, frame=4).pixels == 400).all()
    with pytest.raises(ImageReadError, match="frame 5 is out of range"):
        read_image(path, frame=5)


def test_monochrome1_is_inverse_of_monochrome2(write_dicom):
    stored = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) % 4096).astype(np.uint16)
    header_window = {"WindowCenter": 1000, "WindowWidth": 2000}
    mono2 = read_image(write_dicom("m2.dcm", stored, "MONOCHROME2", 12, **header_window))
    mono1 = read_image(write_dicom("m1.dcm", stored, "MONOCHROME1", 12, **header_window))
    np.testing.assert_array_equal(mono1.pixels, 4095 - mono2.pixels)
    assert mono1.photometric == "MONOCHROME2"
    assert mono1.meta["inverted"] is True and mono1.meta["inversion_offset"] == 4095
    assert mono1.window == (3095.0, 2000.0)
    a = np.asarray(to_model_input(mono2)).astype(int)
    b = np.asarray(to_model_input(mono1)).astype(int)
    assert np.abs(a + b - 255).max() <= 1
    assert a.std() > 0


def test_rg1_chest_cr_monochrome1_is_inverted(pydicom_data_file):
    path = pydicom_data_file("RG1_UNCR.dcm")
    raw = pydicom.dcmread(path).pixel_array.astype(np.float32)
    image = read_image(path)
    assert image.modality == "CR"
    assert image.meta["photometric_original"] == "MONOCHROME1" and image.photometric == "MONOCHROME2"
    np.testing.assert_array_equal(image.pixels, 32767 - raw)
    assert image.window == (32767 - 15000.0, 30000.0)


def test_enhanced_ct_rescale_and_window_from_functional_groups(pydicom_data_file):
    path = pydicom_data_file("eCT_Supplemental.dcm")
    ds = pydicom.dcmread(path)
    image = read_image(path, frame=0)
    np.testing.assert_array_equal(image.pixels, pixel_array(ds, index=0) - 1024.0)
    assert image.meta["rescale_intercept"] == -1024.0
    frame_window = ds.SharedFunctionalGroupsSequence[0].FrameVOILUTSequence[0]
    assert image.window == (float(frame_window.WindowCenter), float(frame_window.WindowWidth))


def test_ybr_multiframe_colour_becomes_rgb(pydicom_file):
    path = pydicom_file("examples_ybr_color.dcm")
    image = read_image(path)
    assert image.photometric == "RGB" and image.pixels.shape == (240, 320, 3)
    assert image.meta["frame"] == 15 and image.meta["n_frames"] == 30
    ds = pydicom.dcmread(path)
    np.testing.assert_array_equal(image.pixels, pixel_array(ds, index=15, as_rgb=True))
    ycbcr = pixel_array(ds, index=15, as_rgb=False)
    assert not np.array_equal(image.pixels, ycbcr)


def test_palette_colour_becomes_rgb(pydicom_file):
    image = read_image(pydicom_file("examples_palette.dcm"))
    assert image.photometric == "RGB" and image.pixels.shape == (350, 800, 3)
    assert image.pixels.max() <= 255


@pytest.mark.parametrize("name", ["IM0001", "1.2.840.99"])
def test_dicom_without_image_suffix_is_detected_by_preamble(write_dicom, name):
    path = write_dicom(name, np.full((2, 2), 7, np.uint8), bits_stored=8)
    image = read_image(path)
    assert image.meta["format"] == "dicom"
    assert (image.pixels == 7).all()


def test_dicom_without_pixel_data(pydicom_file):
    with pytest.raises(ImageReadError, match="no pixel data"):
        read_image(pydicom_file("rtplan.dcm"))


def test_truncated_dicom_pixel_data(pydicom_file, tmp_path):
    data = pydicom_file("CT_small.dcm").read_bytes()
    path = tmp_path / "cut.dcm"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="cannot decode DICOM pixel data") as caught:
        read_image(path)
    assert str(path) in str(caught.value)
