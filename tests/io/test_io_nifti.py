"""NIfTI slices: canonical orientation, display transform, axis/slice/frame choice."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from openmedclip.errors import ImageReadError, InvalidInputError
from openmedclip.io import read_image


def _display(plane: np.ndarray) -> np.ndarray:
    """The documented mapping from a canonical (RAS+) slice to returned pixels."""
    return plane.T[::-1, ::-1]


def test_anatomical_middle_axial_slice(nibabel_file):
    path = nibabel_file("anatomical.nii")
    canonical = nib.as_closest_canonical(nib.load(path)).get_fdata()
    image = read_image(path)
    middle = canonical.shape[2] // 2
    np.testing.assert_array_equal(image.pixels, _display(canonical[:, :, middle]).astype(np.float32))
    assert image.meta["axis"] == "axial" and image.meta["slice_index"] == middle
    assert image.meta["n_slices"] == canonical.shape[2]
    assert image.meta["patient_orientation"] == ("L", "P")
    assert image.meta["spacing"] == (2.0, 2.0)


@pytest.mark.parametrize(
    ("axis", "number", "take", "orientation"),
    [
        ("coronal", 1, lambda c, i: c[:, i, :], ("L", "F")),
        ("sagittal", 0, lambda c, i: c[i, :, :], ("P", "F")),
        ("axial", 2, lambda c, i: c[:, :, i], ("L", "P")),
    ],
)
def test_axis_and_slice_index(nibabel_file, axis, number, take, orientation):
    path = nibabel_file("anatomical.nii")
    canonical = nib.as_closest_canonical(nib.load(path)).get_fdata()
    image = read_image(path, axis=axis, slice_index=3)
    np.testing.assert_array_equal(image.pixels, _display(take(canonical, 3)).astype(np.float32))
    assert image.meta["patient_orientation"] == orientation
    np.testing.assert_array_equal(read_image(path, axis=number, slice_index=3).pixels, image.pixels)


def test_reoriented_volume_matches_canonical_slice(tmp_path):
    canonical = np.arange(5 * 6 * 7, dtype=np.int16).reshape(5, 6, 7)
    stored = np.transpose(canonical, (2, 0, 1))[:, ::-1, :]
    affine = np.array([[0, -2, 0, 8], [0, 0, 3, 0], [4, 0, 0, 0], [0, 0, 0, 1]], dtype=float)
    path = tmp_path / "permuted.nii.gz"
    nib.save(nib.Nifti1Image(stored, affine), path)
    np.testing.assert_array_equal(nib.as_closest_canonical(nib.load(path)).get_fdata(), canonical)
    image = read_image(path, slice_index=4)
    np.testing.assert_array_equal(image.pixels, _display(canonical[:, :, 4]))
    assert image.meta["spacing"] == (3.0, 2.0)  # rows follow anterior (3 mm), columns right-left (2 mm)
    assert image.meta["axcodes"] == ("S", "L", "A")


def test_4d_frame_selects_volume(nibabel_file):
    path = nibabel_file("example4d.nii.gz")
    canonical = nib.as_closest_canonical(nib.load(path)).get_fdata()
    image = read_image(path, frame=1)
    middle = canonical.shape[2] // 2
    np.testing.assert_array_equal(image.pixels, _display(canonical[:, :, middle, 1]).astype(np.float32))
    assert image.meta["frame"] == 1 and image.meta["n_frames"] == 2
    assert read_image(path).meta["frame"] == 0
    with pytest.raises(ImageReadError, match="frame 2 is out of range"):
        read_image(path, frame=2)


def test_slice_index_out_of_range(nibabel_file):
    with pytest.raises(ImageReadError, match="slice 25 is out of range"):
        read_image(nibabel_file("anatomical.nii"), slice_index=25)


def test_bad_axis_is_rejected(nibabel_file):
    with pytest.raises(InvalidInputError, match="axis"):
        read_image(nibabel_file("anatomical.nii"), axis="oblique")


def test_slice_index_on_2d_image_is_rejected(tmp_path):
    path = tmp_path / "flat.png"
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(path)
    with pytest.raises(ImageReadError, match="slice_index applies to NIfTI"):
        read_image(path, slice_index=1)


def test_a_zero_vox_offset_gz_is_checked_by_its_trailer_not_decompressed_twice(nibabel_file, monkeypatch):
    """``example4d.nii.gz`` has ``vox_offset`` 0: its voxels start after the header and extensions (416 bytes),
    which its gzip trailer's size counts."""
    import openmedclip.io.nifti as nifti

    def no_second_pass(*args, **kwargs):
        raise AssertionError("decompressed to check completeness")

    monkeypatch.setattr(nifti.gzip, "open", no_second_pass)
    assert read_image(nibabel_file("example4d.nii.gz")).pixels.shape == (96, 128)


def test_truncated_nifti_gz(nibabel_file, tmp_path):
    data = nibabel_file("example4d.nii.gz").read_bytes()
    path = tmp_path / "cut.nii.gz"
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(ImageReadError, match="NIfTI") as caught:
        read_image(path, frame=1)
    assert str(path) in str(caught.value)
