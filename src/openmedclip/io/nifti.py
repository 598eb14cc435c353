"""NIfTI volumes through nibabel: one 2-D slice in a documented display orientation."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from openmedclip.errors import ImageReadError, InvalidInputError
from openmedclip.io.checks import (
    band_rows,
    check_pixel_count,
    choose_index,
    fill_rows,
    library_warnings,
    one_line,
    reduced_shape,
    reduction_factor,
)
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
    target_size: int | None = None,
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
    (``path`` then only names it); compressed bytes that inflate beyond ``max_volume_bytes`` are refused. A file
    holding less voxel data than its header describes raises as truncated. Only the slice is read, in bands, so
    memory holds the pixels returned and one band. ``target_size`` (pixels) reduces a large slice by the largest
    integer factor that keeps both sides at least ``2 * target_size`` (the mean of each factor x factor block of
    stored voxels, recorded in ``meta["reduced_scale"]``). Library warnings come out as one
    :class:`~openmedclip.io.checks.ReadWarning` line naming the file.
    """
    from nibabel.orientations import io_orientation, ornt2axcodes

    plane_axis = slice_axis(axis)
    with library_warnings(path):
        volume = _volume(path, data, max_volume_bytes)
        shape = volume.shape
        if len(shape) not in (3, 4):
            raise ImageReadError(
                path, f"NIfTI image has shape {shape}; expected a 3-D volume or a 4-D series of volumes"
            )
        orientation = io_orientation(volume.affine)
        if np.isnan(orientation).any():
            raise ImageReadError(path, "NIfTI affine gives no usable orientation for its three spatial axes")
        canonical_axes = orientation[:, 0].astype(int)
        canonical_shape = np.empty(3, dtype=int)
        canonical_shape[canonical_axes] = shape[:3]
        zooms = np.empty(3)
        zooms[canonical_axes] = volume.header.get_zooms()[:3]
        column_axis, row_axis = (a for a in range(3) if a != plane_axis)
        rows, columns = int(canonical_shape[row_axis]), int(canonical_shape[column_axis])
        check_pixel_count(path, rows, columns)
        n_slices = int(canonical_shape[plane_axis])
        index = choose_index(path, slice_index, n_slices, n_slices // 2, "slice")
        n_frames = shape[3] if len(shape) == 4 else 1
        volume_index = choose_index(path, frame, n_frames, 0, "frame")
        _check_voxel_type(path, volume)
        if data is None:
            _check_complete(path, volume)
        factor = reduction_factor(rows, columns, target_size)
        plane = _Plane(volume, orientation, plane_axis, index, volume_index)
        pixels = plane.read(path, factor)
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
    if factor > 1:
        meta["reduced_scale"] = factor
    return MedicalImage(pixels=pixels, path=str(path), meta=meta)


def _volume(path: Path, data: bytes | None, max_volume_bytes: int) -> nib.Nifti1Image:
    """The NIfTI image of the file (read through one open handle, without memory-mapping) or of ``data``."""
    import nibabel as nib  # imported for NIfTI files only

    try:
        volume = (
            nib.load(path, mmap=False, keep_file_open=True) if data is None
            else _from_bytes(path, data, max_volume_bytes)
        )
    except ImageReadError:
        raise
    except Exception as exc:
        raise ImageReadError(path, f"not a readable NIfTI file: {one_line(exc)}") from exc
    if not isinstance(volume, nib.Nifti1Image):
        raise ImageReadError(path, f"not a NIfTI volume (nibabel reads it as a {type(volume).__name__})")
    return volume


def _check_voxel_type(path: Path, volume: nib.Nifti1Image) -> None:
    """Raise for voxel types without a grey value (RGB records, complex numbers)."""
    dtype = volume.get_data_dtype()
    if dtype.fields is not None or dtype.kind == "c":
        raise ImageReadError(path, f"unsupported NIfTI voxel type {dtype}")


def _check_complete(path: Path, volume: nib.Nifti1Image) -> None:
    """Raise when the single-file NIfTI ``path`` holds less voxel data than its header describes (or its gzip
    stream is broken).

    A gzip file whose trailer gives the expected size (modulo 2**32) is taken as complete; any other is
    decompressed to the end of the voxel data."""
    expected = _expected_size(volume)
    compressed = path.name.lower().endswith(".gz")
    if compressed and _gzip_trailer_size(path) == expected % 2**32:
        return
    try:
        with gzip.open(path) if compressed else path.open("rb") as stream:
            stream.seek(expected - 1)
            complete = len(stream.read(1)) == 1
    except EOFError:
        complete = False
    except (OSError, zlib.error) as exc:
        raise ImageReadError(path, f"corrupt gzip data: {one_line(exc)}") from exc
    if not complete:
        raise ImageReadError(path, f"NIfTI data is truncated (the file holds less than the {expected} bytes its "
                             "header describes)")


def _expected_size(volume: nib.Nifti1Image) -> int:
    """Bytes a single-file NIfTI holds up to the end of its voxel data, as its header describes them.

    The offset is the one nibabel reads the voxels from: a header's ``vox_offset`` of 0 (older writers) stands for
    the end of the header and its extensions."""
    offset = getattr(volume.dataobj, "offset", None)
    if offset is None:
        offset = volume.header.get_data_offset()
    return int(offset) + int(np.prod(volume.shape)) * volume.get_data_dtype().itemsize


def _gzip_trailer_size(path: Path) -> int:
    """The uncompressed size (modulo 2**32) that the last 4 bytes of a gzip file give."""
    with path.open("rb") as stream:
        stream.seek(-4, 2)
        return int.from_bytes(stream.read(4), "little")


def _from_bytes(path: Path, data: bytes, max_volume_bytes: int) -> nib.Nifti1Image:
    """The NIfTI-1 or NIfTI-2 image held in ``data``, gunzipped first (at most ``max_volume_bytes``) when compressed."""
    import nibabel as nib

    if data.startswith(GZIP_SIGNATURE):
        data = _gunzip(path, data, max_volume_bytes)
    version = nifti_version(data)
    if version is None:
        raise ImageReadError(path, "not a NIfTI file (no single-file NIfTI-1 or NIfTI-2 header)")
    volume = (nib.Nifti1Image if version == 1 else nib.Nifti2Image).from_bytes(data)
    expected = _expected_size(volume)
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


class _Plane:
    """Slice ``index`` along RAS+ axis ``plane_axis`` of volume ``volume_index``, read in bands of stored voxels.

    ``p`` is the slice in stored axis order (``u``, ``v``: the stored in-plane axes, ``v`` the slower in the
    file); the pixels are ``p`` flipped and transposed into RAS+ order, then displayed as ``s.T[::-1, ::-1]``.
    Bands run along ``v``, so a compressed file is read forwards only, and go through a view of the output in
    stored order, so the pixels are written in place."""

    def __init__(self, volume: nib.Nifti1Image, orientation: np.ndarray, plane_axis: int, index: int,
                 volume_index: int):
        self.volume = volume
        stored_axis = int(np.flatnonzero(orientation[:, 0] == plane_axis)[0])
        self.u, self.v = (a for a in range(3) if a != stored_axis)
        stored_slice = index if orientation[stored_axis, 1] > 0 else volume.shape[stored_axis] - 1 - index
        self.selection: list[int | slice] = [slice(None)] * 3
        self.selection[stored_axis] = stored_slice
        if len(volume.shape) == 4:
            self.selection.append(volume_index)
        self.swapped = orientation[self.u, 0] > orientation[self.v, 0]
        self.flips = (int(orientation[self.u, 1]), int(orientation[self.v, 1]))

    def read(self, path: Path, factor: int) -> np.ndarray:
        """The display pixels (float32), reduced by ``factor``."""
        stored = reduced_shape(self.volume.shape[self.u], self.volume.shape[self.v], factor)
        out = np.empty(stored[::-1] if not self.swapped else stored, np.float32)
        try:
            fill_rows(self._stored_view(out).T, self._bands(factor), factor)
        except Exception as exc:
            raise ImageReadError(path, f"cannot read NIfTI voxel data (corrupt or truncated): {one_line(exc)}") from exc
        return out

    def _stored_view(self, out: np.ndarray) -> np.ndarray:
        """``out`` (display pixels) seen as ``p``: indexed [u, v]."""
        canonical = out[::-1, ::-1].T
        flipped = canonical.T if self.swapped else canonical
        return flipped[:: self.flips[0], :: self.flips[1]]

    def _bands(self, factor: int) -> Iterator[np.ndarray]:
        """``p.T`` in bands of rows (along ``v``), as nibabel scales them."""
        step = band_rows(self.volume.shape[self.u], factor)
        for start in range(0, self.volume.shape[self.v], step):
            selection = list(self.selection)
            selection[self.v] = slice(start, start + step)
            yield np.asanyarray(self.volume.dataobj[tuple(selection)]).T
