"""NIfTI volumes through nibabel: one 2-D slice in a documented display orientation."""

from __future__ import annotations

import gzip
import zlib
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from openmedclip.errors import ImageReadError, InvalidInputError
from openmedclip.io.checks import check_pixel_count, choose_index, one_line
from openmedclip.io.formats import GZIP_SIGNATURE, nifti_version
from openmedclip.io.image import MedicalImage

if TYPE_CHECKING:
    import nibabel as nib

AXES: dict[str, int] = {"sagittal": 0, "coronal": 1, "axial": 2}
"""Slice plane -> the RAS+ axis it is perpendicular to (0: right, 1: anterior, 2: superior)."""

_TOWARDS_LOW = ("L", "P", "F")
"""Patient direction (DICOM letters: F is feet) of decreasing RAS+ index, per axis."""

MAX_VOLUME_BYTES = 2**30
"""Largest decompressed size (1 GiB) of gzip-compressed NIfTI bytes read from memory: a guard against gzip bombs."""


def slice_axis(axis: str | int) -> int:
    """Return the RAS+ axis (0, 1, 2) for 'sagittal' | 'coronal' | 'axial' or 0 | 1 | 2."""
    if isinstance(axis, str) and axis.lower() in AXES:
        return AXES[axis.lower()]
    if isinstance(axis, int) and not isinstance(axis, bool) and axis in (0, 1, 2):
        return axis
    raise InvalidInputError(f"axis must be one of 'axial', 'coronal', 'sagittal' or 0, 1, 2; got {axis!r}")


def read_nifti(
    path: Path,
    *,
    frame: int | None = None,
    slice_index: int | None = None,
    axis: str | int = "axial",
    data: bytes | None = None,
    max_volume_bytes: int = MAX_VOLUME_BYTES,
) -> MedicalImage:
    """Read one slice of a 3-D volume (or of volume ``frame`` of a 4-D series, default 0).

    The volume is taken in its closest RAS+ orientation (``nib.as_closest_canonical``): index 0 of each
    axis points left, posterior, inferior. ``slice_index`` counts along the chosen axis in that space
    (default: the middle, ``n // 2``). With ``c`` the canonical array and ``s`` its 2-D slice
    (``c[:, :, k]`` axial, ``c[:, j, :]`` coronal, ``c[i, :, :]`` sagittal), the pixels are
    ``s.T[::-1, ::-1]``: the way radiology viewers show DICOM slices. Axial: rows run anterior to
    posterior, columns patient right to left. Coronal: rows superior to inferior, columns right to left.
    Sagittal: rows superior to inferior, columns anterior to posterior. ``meta["patient_orientation"]``
    names the directions of increasing column and row index, as DICOM Patient Orientation does.
    Values are the stored voxels after scl_slope/scl_inter.

    ``data`` holds the file's bytes (a single-file ``.nii``, or gzip-compressed ``.nii.gz``) when it is not on disk
    (``path`` then only names it); compressed bytes that inflate beyond ``max_volume_bytes`` are refused.
    """
    import nibabel as nib  # imported for NIfTI files only
    from nibabel.orientations import io_orientation, ornt2axcodes

    plane_axis = slice_axis(axis)
    try:
        volume = nib.load(path) if data is None else _from_bytes(path, data, max_volume_bytes)
    except ImageReadError:
        raise
    except Exception as exc:
        raise ImageReadError(path, f"not a readable NIfTI file: {one_line(exc)}") from exc
    if not isinstance(volume, nib.Nifti1Image):
        raise ImageReadError(path, f"not a NIfTI volume (nibabel reads it as a {type(volume).__name__})")
    shape = volume.shape
    if len(shape) not in (3, 4):
        raise ImageReadError(path, f"NIfTI image has shape {shape}; expected a 3-D volume or a 4-D series of volumes")
    orientation = io_orientation(volume.affine)
    if np.isnan(orientation).any():
        raise ImageReadError(path, "NIfTI affine gives no usable orientation for its three spatial axes")
    canonical_axes = orientation[:, 0].astype(int)
    canonical_shape = np.empty(3, dtype=int)
    canonical_shape[canonical_axes] = shape[:3]
    zooms = np.empty(3)
    zooms[canonical_axes] = volume.header.get_zooms()[:3]
    column_axis, row_axis = (a for a in range(3) if a != plane_axis)
    check_pixel_count(path, int(canonical_shape[row_axis]), int(canonical_shape[column_axis]))
    n_slices = int(canonical_shape[plane_axis])
    index = choose_index(path, slice_index, n_slices, n_slices // 2, "slice")
    n_frames = shape[3] if len(shape) == 4 else 1
    volume_index = choose_index(path, frame, n_frames, 0, "frame")
    plane = _canonical_plane(path, volume, orientation, plane_axis, index, volume_index)
    pixels = plane.T[::-1, ::-1].astype(np.float32)
    meta = {
        "format": "nifti",
        "bit_depth": int(volume.get_data_dtype().itemsize * 8),
        "frame": volume_index,
        "n_frames": n_frames,
        "inverted": False,
        "spacing": (float(zooms[row_axis]), float(zooms[column_axis])),
        "axis": next(name for name, value in AXES.items() if value == plane_axis),
        "slice_index": index,
        "n_slices": n_slices,
        "volume_shape": tuple(int(size) for size in shape),
        "axcodes": tuple(ornt2axcodes(orientation)),  # what nib.aff2axcodes gives, without a second SVD
        "patient_orientation": (_TOWARDS_LOW[column_axis], _TOWARDS_LOW[row_axis]),
    }
    return MedicalImage(pixels=pixels, path=str(path), meta=meta)


def _from_bytes(path: Path, data: bytes, max_volume_bytes: int) -> nib.Nifti1Image:
    """The NIfTI-1 or NIfTI-2 image held in ``data``, gunzipped first (at most ``max_volume_bytes``) when compressed."""
    import nibabel as nib

    if data.startswith(GZIP_SIGNATURE):
        data = _gunzip(path, data, max_volume_bytes)
    version = nifti_version(data)
    if version is None:
        raise ImageReadError(path, "not a NIfTI file (no single-file NIfTI-1 or NIfTI-2 header)")
    volume = (nib.Nifti1Image if version == 1 else nib.Nifti2Image).from_bytes(data)
    expected = int(volume.header.get_data_offset()) + int(np.prod(volume.shape)) * volume.get_data_dtype().itemsize
    if len(data) < expected:
        raise ImageReadError(path, f"NIfTI data is truncated ({len(data)} bytes; its header describes {expected})")
    return volume


def _gunzip(path: Path, data: bytes, max_volume_bytes: int) -> bytes:
    """``data`` decompressed, reading at most one byte past ``max_volume_bytes`` before refusing it."""
    try:
        with gzip.GzipFile(fileobj=BytesIO(data)) as stream:
            inflated = stream.read(max_volume_bytes + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise ImageReadError(path, f"corrupt or truncated gzip data: {one_line(exc)}") from exc
    if len(inflated) > max_volume_bytes:
        raise ImageReadError(
            path, f"decompressed NIfTI volume is larger than the limit of {max_volume_bytes} bytes "
            f"({max_volume_bytes / 2**20:.0f} MiB)"
        )
    return inflated


def _canonical_plane(
    path: Path, volume: nib.Nifti1Image, orientation: np.ndarray, plane_axis: int, index: int, volume_index: int
) -> np.ndarray:
    """Read only slice ``index`` (RAS+ axis ``plane_axis``) and return it as a 2-D array in RAS+ axis order."""
    from nibabel.orientations import apply_orientation

    stored_axis = int(np.flatnonzero(orientation[:, 0] == plane_axis)[0])
    n_slices = volume.shape[stored_axis]
    stored_slice = index if orientation[stored_axis, 1] > 0 else n_slices - 1 - index
    selection: list[int | slice] = [slice(None)] * 3
    selection[stored_axis] = slice(stored_slice, stored_slice + 1)
    if len(volume.shape) == 4:
        selection.append(volume_index)
    try:
        slab = np.asanyarray(volume.dataobj[tuple(selection)])
    except Exception as exc:
        raise ImageReadError(path, f"cannot read NIfTI voxel data (corrupt or truncated): {one_line(exc)}") from exc
    if slab.dtype.fields is not None or np.iscomplexobj(slab):
        raise ImageReadError(path, f"unsupported NIfTI voxel type {slab.dtype}")
    return np.take(apply_orientation(slab, orientation), 0, axis=plane_axis)
