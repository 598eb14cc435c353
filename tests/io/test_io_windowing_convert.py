"""Window presets and the single conversion to model input."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from openmedclip.errors import InvalidInputError, WindowNotApplicableError
from openmedclip.io import WINDOW_PRESETS, MedicalImage, read_image, to_model_input
from openmedclip.io.checks import ReadWarning
from openmedclip.io.convert import IntensityScalingWarning
from openmedclip.io.windowing import resolve_window


def test_presets_hold_the_documented_ct_windows():
    assert WINDOW_PRESETS["lung"] == (-600.0, 1500.0)
    assert WINDOW_PRESETS["mediastinum"] == (50.0, 350.0)
    assert WINDOW_PRESETS["bone"] == (400.0, 1800.0)
    assert WINDOW_PRESETS["brain"] == (40.0, 80.0)
    assert WINDOW_PRESETS["abdomen"] == (40.0, 400.0)


@pytest.mark.parametrize(
    ("name", "expected"), [("LUNG", (-600.0, 1500.0)), ("Soft_Tissue", (40.0, 400.0)), ("soft-tissue", (40.0, 400.0))]
)
def test_preset_names_are_case_insensitive(name, expected):
    assert resolve_window(name) == expected


def test_explicit_window_pair_is_kept():
    assert resolve_window((10, 20)) == (10.0, 20.0)
    assert resolve_window(None) is None


@pytest.mark.parametrize("bad", ["lungs", (0, 0), (0, -5), (1, 2, 3), (float("nan"), 10)])
def test_bad_windows_are_rejected(bad):
    with pytest.raises(InvalidInputError):
        resolve_window(bad)


def test_unknown_preset_lists_known_ones():
    with pytest.raises(InvalidInputError, match="mediastinum"):
        resolve_window("lungs")


def test_window_maps_edges_to_0_and_255():
    pixels = np.array([[-100.0, 0.0, 50.0, 100.0, 300.0]], np.float32)
    image = MedicalImage(pixels=pixels, path="x", window=(50.0, 100.0), meta={"bit_depth": 16})
    out = np.asarray(to_model_input(image))
    assert isinstance(to_model_input(image), Image.Image) and to_model_input(image).mode == "RGB"
    np.testing.assert_array_equal(out[0, :, 0], [0, 0, 128, 255, 255])
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()


def test_min_max_scaling_without_window_and_constant_image():
    ramp = MedicalImage(pixels=np.array([[1000.0, 1500.0, 2000.0]], np.float32), path="x", meta={"bit_depth": 12})
    flat = MedicalImage(pixels=np.full((2, 2), 900.0, np.float32), path="x", meta={"bit_depth": 12})
    with pytest.warns(IntensityScalingWarning, match="12-bit data"):
        scaled = to_model_input(ramp)
    np.testing.assert_array_equal(np.asarray(scaled)[0, :, 0], [0, 128, 255])
    with pytest.warns(IntensityScalingWarning):
        constant = to_model_input(flat)
    assert (np.asarray(constant) == 0).all()


def test_colour_image_stays_colour():
    rgb = np.zeros((2, 2, 3), np.float32)
    rgb[..., 2] = 255
    out = np.asarray(to_model_input(MedicalImage(pixels=rgb, path="x", photometric="RGB", meta={"bit_depth": 8})))
    assert (out[..., 2] == 255).all() and (out[..., :2] == 0).all()


def test_ct_preset_on_non_ct_image_is_refused_unless_forced(tmp_path):
    path = tmp_path / "grey.png"
    Image.fromarray(np.array([[0, 150, 255]], np.uint8)).save(path)
    for window in ("lung", (40, 400), "40,400"):
        with pytest.raises(WindowNotApplicableError, match="8-bit PNG image"):
            read_image(path, window=window)
    with pytest.warns(ReadWarning, match=f"{path}: window applied anyway"):
        image = read_image(path, window="lung", force_window=True)
    assert image.window == (-600.0, 1500.0)
    np.testing.assert_array_equal(np.asarray(to_model_input(image))[0, :, 0], [230, 255, 255])
