"""Images read from memory (uploads, shard samples): the same pixels and metadata as the file read from disk, for
every format, and a clear error naming the upload for bytes that are truncated, empty or not an image."""

from __future__ import annotations

import gzip
from io import BytesIO
from pathlib import Path

import numpy as np
import pydicom
import pytest
import tifffile
from pydicom.data import get_testdata_file

from openmedclip.errors import ImageReadError, InvalidInputError
from openmedclip.io import MedicalImage, read_image, read_image_bytes

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _shipped_dicom(name: str) -> Path:
    """A DICOM file shipped with pydicom or pydicom-data on this machine (never downloaded)."""
    found = get_testdata_file(name, download=False)
    if found is None:
        pytest.skip(f"{name} is not shipped locally")
    return Path(found)


def assert_same_image(from_bytes: MedicalImage, from_file: MedicalImage, name: str) -> None:
    """Identical pixels (values and dtype), window, VOI, modality and metadata; only the path differs."""
    assert from_bytes.path == name
    assert from_bytes.pixels.dtype == from_file.pixels.dtype
    np.testing.assert_array_equal(from_bytes.pixels, from_file.pixels)
    assert from_bytes.meta == from_file.meta
    assert (from_bytes.window, from_bytes.voi, from_bytes.modality, from_bytes.photometric) == (
        from_file.window, from_file.voi, from_file.modality, from_file.photometric
    )


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("CT_small.dcm", {}),  # CT, rescaled to HU, header window
        ("MR_small_bigendian.dcm", {}),
        ("liver_1frame.dcm", {"window": "liver", "force_window": True}),  # a SEG object: the preset is forced
        ("SC_rgb_rle_2frame.dcm", {"frame": 1}),  # RLE colour, second frame
        ("examples_palette.dcm", {}),  # PALETTE COLOR -> RGB
        ("RG1_UNCR.dcm", {}),  # pydicom-data: CR chest, MONOCHROME1
    ],
)
def test_dicom_bytes_read_like_the_file(name, options):
    path = _shipped_dicom(name)
    image = read_image_bytes(path.read_bytes(), "upload.dcm", **options)
    assert_same_image(image, read_image(path, **options), "upload.dcm")
    assert image.meta["format"] == "dicom"


def test_dicom_without_preamble_is_read_by_its_suffix(tmp_path):
    ds = pydicom.dcmread(_shipped_dicom("CT_small.dcm"))
    buffer = BytesIO()
    ds.preamble = None
    ds.save_as(buffer, enforce_file_format=False)
    data = buffer.getvalue()
    assert data[128:132] != b"DICM"
    (tmp_path / "bare.dcm").write_bytes(data)
    assert_same_image(read_image_bytes(data, "bare.dcm"), read_image(tmp_path / "bare.dcm"), "bare.dcm")
    with pytest.raises(ImageReadError, match=r"^bare: unsupported image format"):
        read_image_bytes(data, "bare")


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("anatomical.nii", {}),
        ("anatomical.nii", {"axis": "coronal", "slice_index": 3}),
        ("example4d.nii.gz", {"frame": 1, "axis": "sagittal"}),  # gzip, 4-D
        ("example_nifti2.nii.gz", {}),  # NIfTI-2
        ("standard.nii.gz", {"window": (40.0, 400.0), "force_window": True}),
    ],
)
def test_nifti_bytes_read_like_the_file(nibabel_file, name, options):
    path = nibabel_file(name)
    image = read_image_bytes(path.read_bytes(), "volume", **options)  # recognised by content, not by name
    assert_same_image(image, read_image(path, **options), "volume")
    assert image.meta["format"] == "nifti"


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("chest_xray_normal.png", {}),
        ("head_ct.jpg", {}),
        ("head_ct.jpg", {"target_size": 64}),  # reduced-scale JPEG decode
        ("breast_ultrasound_malignant.png", {"window": "soft tissue", "force_window": True}),
    ],
)
def test_png_and_jpeg_bytes_read_like_the_file(name, options):
    path = EXAMPLES / name
    assert_same_image(read_image_bytes(path.read_bytes(), name, **options), read_image(path, **options), name)


@pytest.mark.realdata
@pytest.mark.parametrize(
    "name", ["Fake_MONOHR1.dcm", "1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819.dcm", "00000001_000.png",
             "16747_3_1.jpg"],
)
def test_real_chest_files_from_bytes(shared_data, name):
    path = shared_data / "txv_test_cxr" / name
    assert_same_image(read_image_bytes(path.read_bytes(), name), read_image(path), name)


def test_slice_index_on_a_2d_upload_is_refused():
    data = (EXAMPLES / "chest_xray_normal.png").read_bytes()
    with pytest.raises(ImageReadError, match=r"^x.png: slice_index applies to NIfTI volumes only"):
        read_image_bytes(data, "x.png", slice_index=1)


def test_bad_options_are_input_errors():
    data = (EXAMPLES / "chest_xray_normal.png").read_bytes()
    with pytest.raises(InvalidInputError, match="axis"):
        read_image_bytes(data, "x.png", axis="oblique")
    with pytest.raises(InvalidInputError, match="window"):
        read_image_bytes(data, "x.png", window="lungs")


def _truncated(data: bytes, keep: float) -> bytes:
    return data[: int(len(data) * keep)]


def _png() -> bytes:
    return (EXAMPLES / "chest_xray_normal.png").read_bytes()


def _ct_bytes() -> bytes:
    return _shipped_dicom("CT_small.dcm").read_bytes()


@pytest.mark.parametrize(
    ("make", "name", "problem"),
    [
        (lambda: b"", "empty.png", "file is empty (0 bytes)"),
        (lambda: b"just some text, not an image", "notes.txt", "unsupported image format"),
        (lambda: _truncated(_png(), 0.5), "half.png", "cannot read image (corrupt, truncated or unsupported)"),
        (lambda: _png()[:8] + bytes(200), "garbage.png", "cannot read image"),
        (lambda: _truncated((EXAMPLES / "head_ct.jpg").read_bytes(), 0.02), "cut.jpg", "cannot read image"),
        (lambda: _truncated(_ct_bytes(), 0.01), "head.dcm", "DICOM file has no pixel data"),
        (lambda: _truncated(_ct_bytes(), 0.5), "cut.dcm", "cannot decode DICOM pixel data"),
        (lambda: _shipped_dicom("MR_truncated.dcm").read_bytes(), "short.dcm", "cannot decode DICOM pixel data"),
        (lambda: b"\x00" * 128 + b"DICM" + b"\xff" * 64, "junk.dcm", "DICOM"),
        (lambda: b"\x1f\x8b\x08\x00garbage", "junk.nii.gz", "corrupt or truncated gzip data"),
        (lambda: gzip.compress(b"not a volume" * 40), "text.nii.gz", "not a NIfTI file"),
    ],
)
def test_bad_bytes_name_the_upload_and_the_problem(make, name, problem):
    with pytest.raises(ImageReadError) as caught:
        read_image_bytes(make(), name)
    assert caught.value.path == name
    assert problem in caught.value.problem
    assert str(caught.value).startswith(f"{name}: ")


@pytest.mark.parametrize("keep", [0.05, 0.5, 0.95])
def test_truncated_nifti_bytes_are_refused(nibabel_file, keep):
    compressed = nibabel_file("example4d.nii.gz").read_bytes()
    plain = nibabel_file("anatomical.nii").read_bytes()
    with pytest.raises(ImageReadError, match=r"^cut.nii.gz: corrupt or truncated gzip data"):
        read_image_bytes(_truncated(compressed, keep), "cut.nii.gz")
    with pytest.raises(ImageReadError, match=r"^cut.nii: (not a readable NIfTI file|NIfTI data is truncated)"):
        read_image_bytes(_truncated(plain, keep), "cut.nii")


def test_gzip_bomb_is_refused_before_it_is_inflated(nibabel_file):
    compressed = nibabel_file("example4d.nii.gz").read_bytes()
    inflated = len(gzip.decompress(compressed))
    image = read_image_bytes(compressed, "ok.nii.gz", max_volume_bytes=inflated)
    assert image.meta["format"] == "nifti"
    with pytest.raises(ImageReadError, match=rf"larger than the limit of {inflated - 1} bytes"):
        read_image_bytes(compressed, "big.nii.gz", max_volume_bytes=inflated - 1)
    bomb = gzip.compress(bytes(64 * 2**20))  # 64 MiB of zeros in about 64 KiB
    with pytest.raises(ImageReadError, match=r"^bomb.nii.gz: decompressed NIfTI volume is larger than the limit"):
        read_image_bytes(bomb, "bomb.nii.gz", max_volume_bytes=2**20)


def test_nan_pixels_are_refused():
    buffer = BytesIO()
    tifffile.imwrite(buffer, np.array([[0.0, np.nan], [1.0, 2.0]], dtype=np.float32))
    with pytest.raises(ImageReadError, match=r"^nan.tif: contains NaN pixels"):
        read_image_bytes(buffer.getvalue(), "nan.tif")
