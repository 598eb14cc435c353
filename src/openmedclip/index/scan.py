"""The archive's files: discovery (:func:`openmedclip.io.find_images`), their state on disk, hashes and headers."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from openmedclip.errors import ImageReadError
from openmedclip.index.headers import read_header
from openmedclip.index.records import FileRecord, FileState
from openmedclip.io import find_images

T = TypeVar("T")
R = TypeVar("R")

_READ_CHUNK = 1 << 20


def check_archive(archive: Path) -> Path:
    """``archive`` as an absolute path; raise ``ImageReadError`` unless it is a folder."""
    if not archive.is_dir():
        problem = "no such folder" if not archive.exists() else "not a folder (an archive is a folder of images)"
        raise ImageReadError(archive, problem)
    return archive.resolve()


def discover(archive: Path) -> list[FileState]:
    """Every image file under ``archive`` (what ``find_images`` finds: DICOM, NIfTI, PNG, JPEG, BMP, TIFF; hidden
    files and folders skipped), sorted by relative path; an archive without images gives an empty list."""
    try:
        paths = find_images([archive], recursive=True)
    except ImageReadError:  # the folder exists (see check_archive), so it holds no images
        return []
    states = []
    for path in paths:
        try:
            stat = path.stat()
        except OSError:  # removed since it was listed
            continue
        states.append(FileState(path.relative_to(archive).as_posix(), stat.st_size, stat.st_mtime_ns))
    return sorted(states, key=lambda state: state.path)


def sha256_file(path: Path) -> str:
    """The SHA-256 of the file's bytes, in hex."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_READ_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def describe(archive: Path, state: FileState) -> FileRecord:
    """The record of one file: its state, hash and header metadata (raises ``OSError`` if it cannot be read)."""
    path = archive / state.path
    return FileRecord(state.path, state.size, state.mtime_ns, sha256_file(path), **read_header(path))


def in_threads(function: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """``[function(item) for item in items]`` on a few threads (hashing and header reads wait on the disk)."""
    if len(items) < 2:
        return [function(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1, len(items))) as pool:
        return list(pool.map(function, items))


def chunks(items: Sequence[T], size: int) -> Iterable[Sequence[T]]:
    """Consecutive slices of ``items`` of ``size`` items (the last may be shorter)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
