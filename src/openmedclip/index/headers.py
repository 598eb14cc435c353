"""Header metadata of an image file, read without decoding its pixels.

Problems with a file's content never raise here: fields that cannot be read are None, and whether the file can be
indexed at all is for the encoder to find out (it decodes the pixels and reports what is wrong).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from openmedclip.errors import ImageReadError
from openmedclip.io.formats import detect_format

_DICOM_TAGS = {
    "modality": "Modality",
    "body_part": "BodyPartExamined",
    "study_uid": "StudyInstanceUID",
    "series_uid": "SeriesInstanceUID",
}
_RASTER_FORMATS = {"PNG": "png", "JPEG": "jpeg", "MPO": "jpeg", "BMP": "bmp"}
_RASTER_SUFFIXES = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".bmp": "bmp"}


def read_header(path: Path) -> dict[str, Any]:
    """``format``, ``modality``, ``body_part``, ``study_uid``, ``series_uid``, ``rows``, ``columns`` of ``path``.

    DICOM fields come from the header (None for other formats and for absent tags); rows × columns are those of
    the image ``read_image`` returns: the frame size for DICOM and TIFF, the picture for PNG/JPEG/BMP, the default
    (axial) slice for NIfTI.
    """
    header: dict[str, Any] = dict.fromkeys(("format", *_DICOM_TAGS, "rows", "columns"))
    try:
        kind = detect_format(path)
    except ImageReadError:
        return header
    readers = {"raster": _raster, "tiff": _tiff, "dicom": _dicom, "nifti": _nifti}
    header["format"] = _RASTER_SUFFIXES.get(path.suffix.lower()) if kind == "raster" else kind
    try:
        header.update(readers[kind](path))
    except Exception:  # a broken header leaves its fields None; decoding reports the problem
        pass
    return header


def _raster(path: Path) -> dict[str, Any]:
    from PIL import Image

    with Image.open(path) as image:
        columns, rows = image.size
        return {"format": _RASTER_FORMATS.get(image.format or "", (image.format or "").lower() or None),
                "rows": rows, "columns": columns}


def _tiff(path: Path) -> dict[str, Any]:
    import tifffile

    with tifffile.TiffFile(path) as tiff:
        page = tiff.pages.first
        return {"rows": int(page.imagelength), "columns": int(page.imagewidth)}


def _dicom(path: Path) -> dict[str, Any]:
    import pydicom

    ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    fields: dict[str, Any] = {}
    for name, keyword in _DICOM_TAGS.items():
        value = ds.get(keyword)
        fields[name] = (str(value).strip() or None) if value is not None else None
    fields["rows"] = int(ds.Rows) if ds.get("Rows") is not None else None
    fields["columns"] = int(ds.Columns) if ds.get("Columns") is not None else None
    return fields


def _nifti(path: Path) -> dict[str, Any]:
    """The axial slice of the closest RAS+ orientation: rows run along the anterior axis, columns left-right."""
    import nibabel as nib
    from nibabel.orientations import io_orientation

    volume: Any = nib.load(path)
    canonical_axes = io_orientation(volume.affine)[:, 0].astype(int)
    shape = [0, 0, 0]
    for stored_axis, canonical_axis in enumerate(canonical_axes):
        shape[canonical_axis] = int(volume.shape[stored_axis])
    return {"rows": shape[1], "columns": shape[0]}
