"""Uncompressed Secondary Capture DICOM datasets built in memory, for tests that need DICOM files."""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid


def build_dicom(
    pixels: np.ndarray, photometric: str = "MONOCHROME2", bits_stored: int | None = None, **attributes
) -> Dataset:
    """A dataset holding ``pixels`` (frames first for multi-frame), Modality 'OT' unless ``attributes`` say
    otherwise; ``attributes`` are set as DICOM keywords."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "OT"
    ds.set_pixel_data(pixels, photometric, bits_stored or pixels.dtype.itemsize * 8)
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds
