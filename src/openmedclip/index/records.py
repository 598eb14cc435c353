"""What the index stores about each file: where it is, its content hash and stat, and header metadata."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

HEADER_FIELDS: tuple[str, ...] = (
    "format", "modality", "body_part", "study_uid", "series_uid", "rows", "columns",
)
"""Metadata read from each file's header: format ('png', 'jpeg', 'bmp', 'tiff', 'dicom', 'nifti'); for DICOM the
Modality, Body Part Examined, Study and Series Instance UIDs (None for other formats); the image's rows × columns."""

FILTER_KEYS: tuple[str, ...] = HEADER_FIELDS
"""The keys a search filter (``where``) may name."""

INTEGER_FIELDS = frozenset({"rows", "columns"})


@dataclass(frozen=True)
class FileState:
    """A file's identity on disk: path relative to the archive root (POSIX), size and modification time."""

    path: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class FileRecord:
    """One indexed (or failed) file: its state, SHA-256 of its bytes and the header metadata."""

    path: str
    size: int
    mtime_ns: int
    sha256: str
    format: str | None = None
    modality: str | None = None
    body_part: str | None = None
    study_uid: str | None = None
    series_uid: str | None = None
    rows: int | None = None
    columns: int | None = None

    def header(self) -> dict[str, Any]:
        """The header metadata, keyed by :data:`HEADER_FIELDS`."""
        values = asdict(self)
        return {name: values[name] for name in HEADER_FIELDS}


RECORD_FIELDS: tuple[str, ...] = ("path", "size", "mtime_ns", "sha256", *HEADER_FIELDS)
"""The stored columns of a :class:`FileRecord`, in order."""


@dataclass(frozen=True)
class Failure:
    """A file that could not be indexed, and why (its hash is None when the file could not even be read)."""

    path: str
    size: int
    mtime_ns: int
    sha256: str | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "message": self.message}
