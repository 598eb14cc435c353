"""DICOM header VOI through pydicom: VOI LUT Functions, VOI LUT Sequence, MONOCHROME1, functional groups."""

from __future__ import annotations

import math
import pickle
import warnings
from dataclasses import replace

import numpy as np
import pydicom
import pytest
import tifffile
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut, apply_voi_lut

from openmedclip.errors import WindowNotApplicableError
from openmedclip.io import read_image, to_model_input
from openmedclip.io.checks import ReadWarning
from openmedclip.io.convert import IntensityScalingWarning
from openmedclip.io.windowing import window_to_unit

RAMP12 = np.arange(4096, dtype=np.uint16).reshape(64, 64)
"""Every 12-bit value once: RAMP12 at value x is x."""


def grey(image) -> np.ndarray:
    return np.asarray(to_model_input(image))[:, :, 0]


def reference(path) -> np.ndarray:
    """pydicom's Modality LUT and ``apply_voi_lut`` on the file itself, its output range mapped onto 0..255.

    Not rounded: ``assert_matches`` allows only the final rounding (a tie such as 127.5 may go either way).
    """
    ds = pydicom.dcmread(path)
    values = apply_modality_lut(ds.pixel_array, ds)
    out = apply_voi_lut(values, ds).astype(np.float64)
    if "WindowCenter" in ds:  # PS3.3 C.11.2.1.2: output range y_min..y_max of the stored (rescaled) values
        bits = int(ds.BitsStored)
        low, high = (0, 2**bits - 1) if ds.PixelRepresentation == 0 else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
        slope, intercept = float(ds.get("RescaleSlope", 1)), float(ds.get("RescaleIntercept", 0))
        low, high = low * slope + intercept, high * slope + intercept
    else:  # VOI LUT: entries span 0..2**bits - 1 (third LUT Descriptor value)
        low, high = 0, 2 ** int(ds.VOILUTSequence[0].LUTDescriptor[2]) - 1
    unit = np.clip((out - low) / (high - low), 0, 1)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        unit = 1 - unit
    return unit * 255


def assert_matches(out: np.ndarray, expected: np.ndarray) -> None:
    assert out.shape == expected.shape
    assert np.abs(out - expected).max() <= 0.5 + 1e-6


def standard(x: float, centre: float, width: float, function: str) -> float:
    """PS3.3 C.11.2.1.2 / C.11.2.1.3 on a 0..1 output range, written out independently of pydicom."""
    if function == "LINEAR":
        value = (x - (centre - 0.5)) / (width - 1) + 0.5
    elif function == "LINEAR_EXACT":
        value = (x - centre) / width + 0.5
    else:
        value = 1 / (1 + math.exp(-4 * (x - centre) / width))
    return min(max(value, 0.0), 1.0)


# At stored value 103 with centre 100 and width 10 the three functions give clearly different grey levels:
# LINEAR (3.5/9 + 0.5) * 255 = 226.7; LINEAR_EXACT 0.8 * 255 = 204; SIGMOID 255 / (1 + e^-1.2) = 196.0.
HAND = {"LINEAR": (227, 57), "LINEAR_EXACT": (204, 51), "SIGMOID": (196, 59)}
"""Grey level at stored values 103 and 97 for Window Center 100, Window Width 10."""


@pytest.mark.parametrize("function", ["LINEAR", "LINEAR_EXACT", "SIGMOID"])
def test_voi_lut_function_matches_standard_and_pydicom(write_dicom, function):
    path = write_dicom(f"{function}.dcm", RAMP12, "MONOCHROME2", 12, WindowCenter=100, WindowWidth=10,
                       VOILUTFunction=function)
    image = read_image(path)
    assert image.window == (100.0, 10.0) and image.voi is not None
    assert image.meta["window_source"] == "header" and image.meta["voi_lut_function"] == function
    out = grey(image)
    assert (out.ravel()[103], out.ravel()[97]) == HAND[function]
    assert_matches(out.ravel()[90:111], np.array([standard(x, 100, 10, function) * 255 for x in range(90, 111)]))
    assert_matches(out, reference(path))


@pytest.mark.parametrize("function", ["LINEAR", "LINEAR_EXACT", "SIGMOID"])
def test_wide_window_on_rescaled_signed_ct_matches_pydicom(write_dicom, function):
    stored = (np.arange(128 * 128, dtype=np.int32).reshape(128, 128) % 3000 - 1000).astype(np.int16)
    path = write_dicom("ct.dcm", stored, "MONOCHROME2", 16, Modality="CT", RescaleSlope=1, RescaleIntercept=-1024,
                       WindowCenter=-500, WindowWidth=1501, VOILUTFunction=function)
    image = read_image(path)
    assert image.pixels.min() == -2024
    out = grey(image)
    assert_matches(out, reference(path))
    hu = image.pixels.ravel()
    assert_matches(out.ravel(), np.array([standard(float(x), -500, 1501, function) * 255 for x in hu]))


def test_default_and_unknown_function_is_linear(write_dicom):
    absent = read_image(write_dicom("absent.dcm", RAMP12, "MONOCHROME2", 12, WindowCenter=100, WindowWidth=10))
    unknown = read_image(write_dicom("unknown.dcm", RAMP12, "MONOCHROME2", 12, WindowCenter=100, WindowWidth=10,
                                     VOILUTFunction="GAMMA"))
    for image in (absent, unknown):
        assert image.meta["voi_lut_function"] == "LINEAR"
        assert grey(image).ravel()[103] == HAND["LINEAR"][0]


def lut_item(entries: np.ndarray, first: int, bits: int, vr: str = "US") -> Dataset:
    item = Dataset()
    item.LUTDescriptor = [len(entries) % 65536, first, bits]
    if vr == "OW":
        item.add_new("LUTData", "OW", entries.astype("<u2").tobytes())
    else:
        item.add_new("LUTData", "US", [int(value) for value in entries])
    return item


GAMMA_LUT = np.rint(65535 * (np.arange(1024) / 1023) ** 2).astype(np.uint16)
"""1024 entries, 16 bits each: a squared ramp, so a linear stand-in would be visibly wrong."""


@pytest.mark.parametrize("vr", ["US", "OW"])
def test_voi_lut_sequence_is_applied_like_pydicom(write_dicom, vr):
    path = write_dicom("lut.dcm", RAMP12, "MONOCHROME2", 12, VOILUTSequence=[lut_item(GAMMA_LUT, 500, 16, vr)])
    image = read_image(path)
    assert image.meta["window_source"] == "voi_lut"
    assert image.window == (500 + 1023 / 2, 1023.0)  # the LUT's input range, for display only
    out = grey(image).ravel()
    # below the first mapped value: entry 0; above the last: the last entry; 500 + 512 -> (512/1023)^2 * 255
    assert out[499] == 0 and out[1012] == 64 and out[1523] == 255 and out[4095] == 255
    assert grey(replace(image, voi=None)).ravel()[1012] == 128  # what the linear stand-in would give
    assert_matches(grey(image), reference(path))


def test_8bit_voi_lut_entries_span_0_to_255(write_dicom):
    lut = np.array([255 - i for i in range(256)], np.uint8)  # a reversing LUT
    path = write_dicom("lut8.dcm", RAMP12, "MONOCHROME2", 12, VOILUTSequence=[lut_item(lut, 0, 8)])
    out = grey(read_image(path)).ravel()
    assert out[0] == 255 and out[100] == 155 and out[255] == 0 and (out[256:] == 0).all()
    # pydicom indexes an 8-bit LUT with a uint8 array, so inputs past 255 wrap round there: compare the LUT range
    assert_matches(out[:256], reference(path).ravel()[:256])


def unusable_luts() -> list[Dataset]:
    nine_bits, short, no_data = lut_item(GAMMA_LUT, 500, 9), lut_item(GAMMA_LUT[:100], 500, 16), Dataset()
    short.LUTDescriptor = [1024, 500, 16]
    no_data.LUTDescriptor = [1024, 500, 16]
    return [nine_bits, short, no_data]


@pytest.mark.parametrize("case", range(3), ids=["9-bit entries", "short data", "no data"])
def test_unusable_voi_lut_keeps_the_linear_stand_in(write_dicom, case):
    path = write_dicom("bad.dcm", RAMP12, "MONOCHROME2", 12, VOILUTSequence=[unusable_luts()[case]])
    image = read_image(path)
    assert image.voi is None and image.meta["window_source"] == "voi_lut_range"
    assert image.window == (500 + 1023 / 2, 1023.0)
    assert grey(image).ravel()[1012] == 128


def test_window_preferred_over_voi_lut_sequence(write_dicom):
    path = write_dicom("both.dcm", RAMP12, "MONOCHROME2", 12, WindowCenter=100, WindowWidth=10,
                       VOILUTFunction="SIGMOID", VOILUTSequence=[lut_item(GAMMA_LUT, 500, 16)])
    image = read_image(path)
    assert image.meta["window_source"] == "header" and image.voi.lut_descriptor is None
    assert grey(image).ravel()[103] == HAND["SIGMOID"][0]


@pytest.mark.parametrize("function", ["LINEAR", "LINEAR_EXACT", "SIGMOID"])
def test_monochrome1_voi_keeps_bright_dense(write_dicom, function):
    header = {"WindowCenter": 100, "WindowWidth": 10, "VOILUTFunction": function}
    mono1 = read_image(write_dicom("m1.dcm", RAMP12, "MONOCHROME1", 12, **header))
    mono2 = read_image(write_dicom("m2.dcm", RAMP12, "MONOCHROME2", 12, **header))
    assert mono1.window == (4095 - 100.0, 10.0) and mono1.voi.inversion_offset == 4095
    out1, out2 = grey(mono1).ravel(), grey(mono2).ravel()
    # MONOCHROME1: stored 0 is displayed white, so the densest (lowest stored) value is brightest here
    assert out1[0] == 255 and out1[4095] == 0
    high, low = HAND[function]
    assert (out1[103], out1[97]) == (255 - high, 255 - low)
    assert np.abs(out1.astype(int) + out2 - 255).max() <= 1  # 127.5 at the centre may round either way
    assert_matches(out1, reference(write_dicom("r.dcm", RAMP12, "MONOCHROME1", 12, **header)).ravel())


def test_monochrome1_linear_is_not_the_reflected_linear_window(write_dicom):
    # Reflecting LINEAR's half-pixel shift would move every grey level by 255 / (width - 1) = 28 here.
    mono1 = read_image(write_dicom("m1.dcm", RAMP12, "MONOCHROME1", 12, WindowCenter=100, WindowWidth=10))
    assert grey(mono1).ravel()[103] == 28  # 255 * (1 - (3.5 / 9 + 0.5))


def test_monochrome1_voi_lut(write_dicom):
    path = write_dicom("m1lut.dcm", RAMP12, "MONOCHROME1", 12, VOILUTSequence=[lut_item(GAMMA_LUT, 500, 16)])
    image = read_image(path)
    assert image.window == (4095 - (500 + 1023 / 2), 1023.0)
    out = grey(image).ravel()
    assert out[0] == 255 and out[1012] == 255 - 64 and out[4095] == 0
    assert_matches(out, reference(path).ravel())


def test_per_frame_functional_group_voi(tmp_path, dicom_dataset):
    ds = dicom_dataset(np.stack([RAMP12, RAMP12]), "MONOCHROME2", 12)
    groups = []
    for function in ("SIGMOID", "LINEAR_EXACT"):
        voi = Dataset()
        voi.WindowCenter, voi.WindowWidth, voi.VOILUTFunction = 100, 10, function
        group = Dataset()
        group.FrameVOILUTSequence = [voi]
        groups.append(group)
    ds.PerFrameFunctionalGroupsSequence = groups
    path = tmp_path / "enhanced.dcm"
    ds.save_as(path, enforce_file_format=True)
    for frame, function in enumerate(("SIGMOID", "LINEAR_EXACT")):
        image = read_image(path, frame=frame)
        assert image.meta["voi_lut_function"] == function
        assert grey(image).ravel()[103] == HAND[function][0]


def test_user_window_replaces_header_voi_with_plain_linear(write_dicom):
    path = write_dicom("w.dcm", RAMP12, "MONOCHROME2", 12, WindowCenter=100, WindowWidth=10, VOILUTFunction="SIGMOID")
    for image in (read_image(path, window=(100, 10)), replace(read_image(path), window=(100.0, 10.0 + 1e-9))):
        plain = np.rint(window_to_unit(image.pixels, image.window) * 255).astype(np.uint8)
        np.testing.assert_array_equal(grey(image), plain)
        assert grey(image).ravel()[103] == 204
    assert grey(read_image(path, window="40,400")).ravel()[103] == round((103 - 40 + 200) / 400 * 255)
    with pytest.raises(WindowNotApplicableError, match="OT DICOM"):
        read_image(path, window="lung")  # a preset is in Hounsfield units: not for this header's values


def test_image_with_voi_pickles(write_dicom):
    image = read_image(write_dicom("p.dcm", RAMP12, "MONOCHROME1", 12, VOILUTSequence=[lut_item(GAMMA_LUT, 500, 16)]))
    copy = pickle.loads(pickle.dumps(image))
    assert copy.voi == image.voi and "lut_data" not in repr(image.voi)
    np.testing.assert_array_equal(grey(copy), grey(image))


# --- the min-max fallback warning --------------------------------------------------------------------------


def no_scaling_warning(image) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", IntensityScalingWarning)
        to_model_input(image)


def test_warning_for_16bit_png_and_tiff_without_window(tmp_path):
    png, tiff = tmp_path / "ramp16.png", tmp_path / "ramp16.tif"
    Image.fromarray(RAMP12 * 16).save(png)
    tifffile.imwrite(tiff, RAMP12 * 16)
    for path in (png, tiff):
        with pytest.warns(IntensityScalingWarning, match="16-bit data") as caught:
            to_model_input(read_image(path))
        assert str(path) in str(caught[0].message) and "window=" in str(caught[0].message)
        with pytest.warns(ReadWarning, match="window applied anyway"):
            forced = read_image(path, window=(30000, 20000), force_window=True)
        no_scaling_warning(forced)


def test_warning_for_float_tiff_and_hu_without_window(tmp_path, write_dicom):
    path = tmp_path / "float.tif"
    tifffile.imwrite(path, RAMP12.astype(np.float32) / 7)
    with pytest.warns(IntensityScalingWarning, match="float data"):
        to_model_input(read_image(path))
    ct = write_dicom("ct8.dcm", RAMP12.astype(np.uint8), "MONOCHROME2", 8, Modality="CT", RescaleSlope=1,
                     RescaleIntercept=-1024)
    with pytest.warns(IntensityScalingWarning, match="CT data"):
        to_model_input(read_image(ct))
    no_scaling_warning(read_image(ct, window="lung"))


def test_no_warning_for_8bit_png_or_header_voi(tmp_path, write_dicom):
    path = tmp_path / "grey.png"
    pixels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    Image.fromarray(pixels).save(path)
    image = read_image(path)
    no_scaling_warning(image)
    np.testing.assert_array_equal(grey(image), pixels)
    no_scaling_warning(read_image(write_dicom("h.dcm", RAMP12, "MONOCHROME2", 12, WindowCenter=9, WindowWidth=9)))


# --- package-shipped DICOM files ---------------------------------------------------------------------------


def test_mr_small_header_window_matches_pydicom(pydicom_file):
    path = pydicom_file("MR_small.dcm")
    assert_matches(grey(read_image(path)), reference(path))


def test_vlut_04_voi_lut_sequence_matches_pydicom(pydicom_data_file):
    path = pydicom_data_file("vlut_04.dcm")
    image = read_image(path)
    assert image.meta["window_source"] == "voi_lut" and image.voi.lut_descriptor == (256, 0, 16)
    assert_matches(grey(image), reference(path))


@pytest.mark.parametrize("name", ["RG3_UNCR.dcm", "RG1_UNCR.dcm"])
def test_monochrome1_cr_header_window_matches_pydicom(pydicom_data_file, name):
    path = pydicom_data_file(name)
    image = read_image(path)
    assert image.meta["inverted"] is True and image.meta["window_source"] == "header"
    out = grey(image)
    assert_matches(out, reference(path))
    assert out.std() > 10
