"""Fixtures for the io tests: package-shipped DICOM/NIfTI files and a small DICOM writer."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import nibabel
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset

from dicom_files import build_dicom

PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
NIBABEL_FILES = Path(nibabel.__file__).parent / "tests" / "data"


def _packaged(folder: Path | None, name: str) -> Path:
    path = folder / name if folder else None
    if path is None or not path.is_file():
        pytest.skip(f"{name} is not installed locally")
    return path


@pytest.fixture
def pydicom_file() -> Callable[[str], Path]:
    """Path of a file shipped in pydicom's wheel (found on disk: never triggers a download)."""
    return lambda name: _packaged(PYDICOM_FILES, name)


@pytest.fixture
def pydicom_data_file() -> Callable[[str], Path]:
    """Path of a file shipped by the pydicom-data package (module ``data_store``); skips when absent."""
    spec = importlib.util.find_spec("data_store")
    folder = Path(spec.origin).parent / "data" if spec and spec.origin else None
    return lambda name: _packaged(folder, name)


@pytest.fixture
def nibabel_file() -> Callable[[str], Path]:
    """Path of a file shipped in nibabel's test data."""
    return lambda name: _packaged(NIBABEL_FILES, name)


@pytest.fixture
def dicom_dataset() -> Callable[..., Dataset]:
    """Build an uncompressed DICOM dataset: ``dicom_dataset(pixels, photometric, bits_stored, **attributes)``."""
    return build_dicom


@pytest.fixture
def write_dicom(tmp_path: Path) -> Callable[..., Path]:
    """Write ``dicom_dataset(pixels, ...)`` to ``tmp_path / name`` (with the DICM preamble) and return the path."""

    def write(
        name: str, pixels: np.ndarray, photometric: str = "MONOCHROME2", bits_stored: int | None = None, **attributes
    ) -> Path:
        path = tmp_path / name
        build_dicom(pixels, photometric, bits_stored, **attributes).save_as(path, enforce_file_format=True)
        return path

    return write
