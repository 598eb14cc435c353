"""Which reader handles a file: by suffix first, then by the file's first bytes."""

from __future__ import annotations

import struct
from pathlib import Path

from openmedclip.errors import ImageReadError

SUFFIX_FORMATS: dict[str, str] = {
    ".png": "raster",
    ".jpg": "raster",
    ".jpeg": "raster",
    ".bmp": "raster",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".dcm": "dicom",
    ".dicom": "dicom",
    ".nii": "nifti",
    ".nii.gz": "nifti",
}
IMAGE_SUFFIXES: tuple[str, ...] = tuple(SUFFIX_FORMATS)
"""File suffixes read by ``read_image`` (lower case; matched case-insensitively). DICOM files without
one of these suffixes are recognised by their 'DICM' preamble."""

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "raster"),
    (b"\xff\xd8\xff", "raster"),
    (b"BM", "raster"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"II+\x00", "tiff"),
    (b"MM\x00+", "tiff"),
)
GZIP_SIGNATURE = b"\x1f\x8b"
"""The first bytes of gzip data (in memory, read as a compressed NIfTI file: the only compressed format read)."""
_NIFTI_HEADER_SIZES = {348: 1, 540: 2}
"""NIfTI ``sizeof_hdr`` -> format version."""


def image_suffix(path: Path) -> str | None:
    """The known image suffix of ``path`` (``.nii.gz`` counts as one), or None."""
    name = path.name.lower()
    if name.endswith(".nii.gz"):
        return ".nii.gz"
    suffix = Path(name).suffix
    return suffix if suffix in SUFFIX_FORMATS else None


def sniff_format(path: Path) -> str | None:
    """The format named by the file's first bytes (PNG, JPEG, BMP, TIFF, DICOM preamble), or None."""
    try:
        with path.open("rb") as handle:
            head = handle.read(132)
    except OSError:
        return None
    return sniff_bytes(head)


def sniff_bytes(head: bytes) -> str | None:
    """The format named by a file's first bytes (at least 132 for DICOM), or None."""
    if head[128:132] == b"DICM":
        return "dicom"
    for signature, kind in _SIGNATURES:
        if head.startswith(signature):
            return kind
    return None


def nifti_version(head: bytes) -> int | None:
    """1 or 2 when ``head`` (at least 348 bytes) starts a single-file NIfTI-1 or NIfTI-2 image, else None."""
    if len(head) < 8:
        return None
    for order in "<>":
        version = _NIFTI_HEADER_SIZES.get(struct.unpack(f"{order}i", head[:4])[0])
        if (version == 1 and head[344:348] == b"n+1\0") or (version == 2 and head[4:8] == b"n+2\0"):
            return version
    return None


def detect_bytes_format(data: bytes, name: str) -> str:
    """Return 'raster', 'tiff', 'dicom' or 'nifti' for an in-memory file, or raise naming it.

    The first bytes decide (as :func:`sniff_bytes`, plus NIfTI-1/NIfTI-2 headers and gzip data, read as
    ``.nii.gz``), else the suffix of ``name`` (e.g. a DICOM file without its preamble named ``*.dcm``).
    """
    kind = sniff_bytes(data[:132]) or ("nifti" if data.startswith(GZIP_SIGNATURE) or nifti_version(data) else None)
    suffix = image_suffix(Path(name))
    kind = kind or (SUFFIX_FORMATS[suffix] if suffix else None)
    if kind is None:
        raise ImageReadError(name, "unsupported image format (expected PNG, JPEG, BMP, TIFF, DICOM or NIfTI bytes)")
    return kind


def detect_format(path: Path) -> str:
    """Return 'raster', 'tiff', 'dicom' or 'nifti' for ``path``, or raise naming the unsupported file."""
    suffix = image_suffix(path)
    kind = SUFFIX_FORMATS[suffix] if suffix else sniff_format(path)
    if kind is None:
        raise ImageReadError(
            path, f"unsupported image format (supported: {', '.join(IMAGE_SUFFIXES)}, or DICOM with a 'DICM' preamble)"
        )
    return kind
