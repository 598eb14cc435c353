"""``read_image`` and ``read_image_bytes``: one entry point each (a file, or its bytes in memory) that picks the format
reader and applies the caller's window."""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path

from openmedclip.errors import ImageReadError, WindowNotApplicableError
from openmedclip.io.checks import ReadWarning, check_file, check_target_size, require_finite
from openmedclip.io.formats import detect_bytes_format, detect_format
from openmedclip.io.image import MedicalImage
from openmedclip.io.nifti import MAX_VOLUME_BYTES, read_nifti, slice_axis
from openmedclip.io.raster import read_raster
from openmedclip.io.tiff import read_tiff
from openmedclip.io.windowing import is_preset, resolve_window, window_problem


def _read(
    kind: str,
    path: Path,
    data: bytes | None,
    *,
    frame: int | None,
    slice_index: int | None,
    plane_axis: int,
    target_size: int | None,
    max_volume_bytes: int = MAX_VOLUME_BYTES,
) -> MedicalImage:
    """Read ``path`` (or ``data``, named ``path``) with the reader for ``kind`` and check its pixels are finite."""
    if kind == "nifti":
        image = read_nifti(path, frame=frame, slice_index=slice_index, axis=plane_axis, data=data,
                           max_volume_bytes=max_volume_bytes, target_size=target_size)
    elif slice_index is not None:
        raise ImageReadError(
            path, "slice_index applies to NIfTI volumes only; use frame for DICOM frames or TIFF pages"
        )
    elif kind == "raster":
        image = read_raster(path, frame=frame, data=data, target_size=target_size)
    elif kind == "dicom":
        from openmedclip.io.dicom import read_dicom  # pydicom is imported for DICOM files only

        image = read_dicom(path, frame=frame, data=data, target_size=target_size)
    else:
        image = read_tiff(path, frame=frame, data=data, target_size=target_size)
    if image.picture is None:  # an 8-bit picture is finite
        require_finite(path, image.pixels)
    return image


def _with_window(
    image: MedicalImage, window: tuple[float, float] | None, *, preset: bool, force: bool
) -> MedicalImage:
    """``image`` with the caller's window (replacing any header window), or unchanged without one.

    A window that does not fit the data (:func:`~openmedclip.io.windowing.window_problem`) raises
    :class:`WindowNotApplicableError`, or with ``force`` is applied with a :class:`ReadWarning`."""
    if window is None:
        return image
    problem = window_problem(image, preset)
    if problem is not None:
        if not force:
            raise WindowNotApplicableError(image.path, problem)
        warnings.warn(f"{image.path}: window applied anyway, but {problem}", ReadWarning, stacklevel=3)
    return replace(image, window=window, meta={**image.meta, "window_source": "user"})


def read_image(
    path: str | Path,
    *,
    window: str | tuple[float, float] | None = None,
    frame: int | None = None,
    slice_index: int | None = None,
    axis: str | int = "axial",
    target_size: int | None = None,
    force_window: bool = False,
) -> MedicalImage:
    """Read a PNG, JPEG, BMP, TIFF, DICOM or NIfTI file as a :class:`MedicalImage`.

    The format comes from the suffix (``IMAGE_SUFFIXES``), else from the first bytes (PNG, JPEG, BMP,
    TIFF, DICOM 'DICM' preamble). ``window`` (a ``WINDOW_PRESETS`` name or ``(centre, width)`` in pixel
    units) replaces any header window; it must fit the data (a preset needs CT in Hounsfield units, numbers
    CT or a DICOM header window: :func:`~openmedclip.io.windowing.window_problem`), else
    ``WindowNotApplicableError``, unless ``force_window`` applies it with a ``ReadWarning``. ``frame`` picks a
    DICOM frame (default: middle), a TIFF page (required for stacks), a 4-D NIfTI volume (default 0) or a Pillow
    frame (default 0).
    ``slice_index`` and ``axis`` choose the NIfTI slice (see ``read_nifti``); ``slice_index`` on a 2-D
    format raises. ``target_size`` (pixels: the side a preprocess resizes towards) lets large images decode
    at reduced scale, keeping both sides at least twice that (JPEG draft, then an integer block mean; see
    ``read_raster``, ``read_tiff``, ``read_dicom``, ``read_nifti``).
    Every failure to read is an ``ImageReadError`` naming the file and the problem.
    """
    path = Path(path)
    check_target_size(target_size)
    chosen_window = resolve_window(window)
    plane_axis = slice_axis(axis)
    check_file(path)
    image = _read(detect_format(path), path, None, frame=frame, slice_index=slice_index, plane_axis=plane_axis,
                  target_size=target_size)
    return _with_window(image, chosen_window, preset=is_preset(window), force=force_window)


def read_image_bytes(
    data: bytes,
    name: str,
    *,
    window: str | tuple[float, float] | None = None,
    frame: int | None = None,
    slice_index: int | None = None,
    axis: str | int = "axial",
    target_size: int | None = None,
    max_volume_bytes: int = MAX_VOLUME_BYTES,
    force_window: bool = False,
) -> MedicalImage:
    """Read an in-memory PNG, JPEG, BMP, TIFF, DICOM or NIfTI file (an upload, a webdataset sample, ...).

    ``name`` names it in errors and in ``MedicalImage.path``. The format comes from the first bytes (PNG,
    JPEG, BMP, TIFF, DICOM 'DICM' preamble, NIfTI-1/NIfTI-2 header, gzip for ``.nii.gz``), else from the
    suffix of ``name`` (e.g. DICOM without a preamble as ``*.dcm``). NIfTI must be a single ``.nii`` file,
    plain or gzip-compressed; compressed bytes that inflate beyond ``max_volume_bytes`` are refused. The
    options and every other convention are those of :func:`read_image`: the same bytes give the same pixels
    and metadata as the file read from disk.
    """
    check_target_size(target_size)
    chosen_window = resolve_window(window)
    plane_axis = slice_axis(axis)
    if not data:
        raise ImageReadError(name, "file is empty (0 bytes)")
    image = _read(detect_bytes_format(data, name), Path(name), data, frame=frame, slice_index=slice_index,
                  plane_axis=plane_axis, target_size=target_size, max_volume_bytes=max_volume_bytes)
    return _with_window(image, chosen_window, preset=is_preset(window), force=force_window)
