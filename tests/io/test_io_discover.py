"""find_images: folder expansion, suffix and preamble detection, hidden files, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from openmedclip.errors import ImageReadError
from openmedclip.io import IMAGE_SUFFIXES, find_images


def test_suffixes_cover_the_supported_formats():
    assert {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".dcm", ".dicom", ".nii", ".nii.gz"} <= set(
        IMAGE_SUFFIXES
    )


@pytest.fixture
def image_tree(tmp_path, write_dicom) -> Path:
    root = tmp_path / "images"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / ".hidden_dir").mkdir()
    for name in [
        "b.png",
        "A.JPG",
        "sub/scan.nii.gz",
        "sub/deeper/c.TIFF",
        ".hidden.png",
        ".hidden_dir/d.png",
        "notes.txt",
        "sub/archive.gz",
    ]:
        (root / name).write_bytes(b"x")
    write_dicom("images/sub/IM0001", np.zeros((2, 2), np.uint8), bits_stored=8)
    write_dicom("images/1.2.840.5", np.zeros((2, 2), np.uint8), bits_stored=8)
    return root


def test_folder_expansion_is_sorted_and_filtered(image_tree):
    names = [path.relative_to(image_tree).as_posix() for path in find_images([image_tree])]
    assert names == ["1.2.840.5", "A.JPG", "b.png", "sub/IM0001", "sub/deeper/c.TIFF", "sub/scan.nii.gz"]


def test_non_recursive_stays_in_the_folder(image_tree):
    names = [path.name for path in find_images([str(image_tree)], recursive=False)]
    assert names == ["1.2.840.5", "A.JPG", "b.png"]


def test_files_and_folders_keep_argument_order_without_duplicates(image_tree):
    first = image_tree / "sub" / "scan.nii.gz"
    found = find_images([first, image_tree / "sub"])
    assert found[0] == first
    assert len(found) == len(set(found)) == 3


def test_empty_folder_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images")
    with pytest.raises(ImageReadError, match="no images") as caught:
        find_images([tmp_path / "empty"])
    assert str(tmp_path / "empty") in str(caught.value)


def test_missing_path_is_an_error(tmp_path):
    with pytest.raises(ImageReadError, match="no such file or folder") as caught:
        find_images([tmp_path / "nowhere"])
    assert "nowhere" in str(caught.value)


def test_named_unsupported_file_is_an_error(image_tree):
    with pytest.raises(ImageReadError, match="unsupported image format"):
        find_images([image_tree / "notes.txt"])
