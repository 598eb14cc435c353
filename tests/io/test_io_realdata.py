"""Real chest X-rays (PNG, JPEG, JPEG-baseline CR DICOM) from the shared data folder."""

from __future__ import annotations

import numpy as np
import pytest

from openmedclip.io import find_images, read_image, to_model_input

pytestmark = pytest.mark.realdata

MONOCHROME2 = "1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819.dcm"
MONOCHROME1 = "Fake_MONOHR1.dcm"


def test_monochrome1_copy_is_the_intensity_inverse(shared_data):
    folder = shared_data / "txv_test_cxr"
    normal = read_image(folder / MONOCHROME2)
    flipped = read_image(folder / MONOCHROME1)
    assert normal.meta["photometric_original"] == "MONOCHROME2"
    assert flipped.meta["photometric_original"] == "MONOCHROME1" and flipped.meta["inverted"] is True
    a = np.asarray(to_model_input(normal)).astype(int)
    b = np.asarray(to_model_input(flipped)).astype(int)
    assert a.shape == b.shape == (1024, 1024, 3)
    assert np.abs(a + b - 255).max() <= 1
    assert a.std() > 10


def test_jpeg_baseline_cr_dicom(shared_data):
    image = read_image(shared_data / "txv_test_cxr" / MONOCHROME2)
    assert image.modality == "CR"
    assert "JPEG Baseline" in image.meta["transfer_syntax"]
    assert image.pixels.shape == (1024, 1024) and image.meta["bit_depth"] == 8
    assert image.pixels.min() >= 0 and image.pixels.max() <= 255


def test_png_and_jpeg_chest_xrays(shared_data):
    folder = shared_data / "txv_test_cxr"
    nih = read_image(folder / "00000001_000.png")
    assert nih.pixels.shape == (512, 512) and nih.photometric == "MONOCHROME2"
    assert np.asarray(to_model_input(nih))[..., 0].tolist() == nih.pixels.astype(int).tolist()
    jpeg = read_image(folder / "16747_3_1.jpg")
    assert jpeg.pixels.shape == (885, 1036, 3) and jpeg.meta["format"] == "jpeg"


def test_find_images_in_the_chest_xray_folder(shared_data):
    folder = shared_data / "txv_test_cxr"
    found = [path.relative_to(folder).as_posix() for path in find_images([folder])]
    assert len(found) == 9
    assert MONOCHROME1 in found and "tbx11k_test_data/imgs/tb/tb0005.png" in found
    assert not any(name.endswith((".md", ".json")) or name == "SHA256SUMS" for name in found)
