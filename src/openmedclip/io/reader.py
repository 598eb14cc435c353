"""``read_image``: one entry point that picks the format reader and applies the caller's window."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from openmedclip.errors import ImageReadError
from openmedclip.io.checks import check_file, check_target_size, require_finite
from openmedclip.io.formats import detect_format, sniff_bytes
from openmedclip.io.image import MedicalImage
from openmedclip.io.nifti import read_nifti, slice_axis
from openmedclip.io.raster import read_raster
from openmedclip.io.tiff import read_tiff
from openmedclip.io.windowing import resolve_window


def _read_planar(kind: str, path: Path, frame: int | None) -> MedicalImage:
    if kind == "dicom":
        from openmedclip.io.dicom import read_dicom  # pydicom is imported for DICOM files only

        return read_dicom(path, frame=frame)
    return read_tiff(path, frame=frame)


def read_image(
    path: str | Path,
    *,
    window: str | tuple[float, float] | None = None,
    frame: int | None = None,
    slice_index: int | None = None,
    axis: str | int = "axial",
    target_size: int | None = None,
) -> MedicalImage:
    """Read a PNG, JPEG, BMP, TIFF, DICOM or NIfTI file as a :class:`MedicalImage`.

    The format comes from the suffix (``IMAGE_SUFFIXES``), else from the first bytes (PNG, JPEG, BMP,
    TIFF, DICOM 'DICM' preamble). ``window`` (a ``WINDOW_PRESETS`` name or ``(centre, width)`` in pixel
    units) replaces any header window. ``frame`` picks a DICOM frame (default: middle), a TIFF page
    (required for stacks), a 4-D NIfTI volume (default 0) or a Pillow frame (default 0).
    ``slice_index`` and ``axis`` choose the NIfTI slice (see ``read_nifti``); ``slice_index`` on a 2-D
    format raises. ``target_size`` (pixels: the side a preprocess resizes towards) lets large JPEGs decode
    at reduced scale, keeping both sides at least twice that (see ``read_raster``); other formats ignore it.
    Every failure to read is an ``ImageReadError`` naming the file and the problem.
    """
    path = Path(path)
    check_target_size(target_size)
    chosen_window = resolve_window(window)
    plane_axis = slice_axis(axis)
    check_file(path)
    kind = detect_format(path)
    if kind == "nifti":
        image = read_nifti(path, frame=frame, slice_index=slice_index, axis=plane_axis)
    elif slice_index is not None:
        raise ImageReadError(
            path, "slice_index applies to NIfTI volumes only; use frame for DICOM frames or TIFF pages"
        )
    elif kind == "raster":
        image = read_raster(path, frame=frame, target_size=target_size)
    else:
        image = _read_planar(kind, path, frame)
    require_finite(path, image.pixels)
    if chosen_window is not None:
        image = replace(image, window=chosen_window, meta={**image.meta, "window_source": "user"})
    return image


def read_image_bytes(
    data: bytes, name: str, *, frame: int | None = None, target_size: int | None = None
) -> MedicalImage:
    """Read an in-memory PNG, JPEG, BMP or TIFF file (e.g. from a webdataset shard); ``name`` names it in errors.

    Same conventions as :func:`read_image` for those formats.
    """
    check_target_size(target_size)
    kind = sniff_bytes(data)
    if kind == "raster":
        image = read_raster(Path(name), frame=frame, data=data, target_size=target_size)
    elif kind == "tiff":
        image = read_tiff(Path(name), frame=frame, data=data)
    else:
        raise ImageReadError(name, "unsupported in-memory image (expected PNG, JPEG, BMP or TIFF bytes)")
    require_finite(Path(name), image.pixels)
    return image
