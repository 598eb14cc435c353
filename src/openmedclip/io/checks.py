"""Checks shared by the readers (file presence, size limit, index ranges, finite pixels) and error wording."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from openmedclip.errors import ImageReadError, InvalidInputError

MAX_PIXELS = 2**27
"""Largest image (rows x columns) read, about 134 million pixels: a guard against decompression bombs."""


def check_file(path: Path) -> None:
    """Raise unless ``path`` is an existing, non-empty regular file."""
    if not path.exists():
        raise ImageReadError(path, "file not found")
    if path.is_dir():
        raise ImageReadError(path, "is a directory, not an image file")
    if path.stat().st_size == 0:
        raise ImageReadError(path, "file is empty (0 bytes)")


def check_pixel_count(path: Path, rows: int, columns: int) -> None:
    """Raise when an image of ``rows`` x ``columns`` is above :data:`MAX_PIXELS`."""
    if rows * columns > MAX_PIXELS:
        raise ImageReadError(
            path,
            f"image is too large ({columns}x{rows} = {rows * columns} pixels; the limit is {MAX_PIXELS} = 2^27)",
        )


def check_target_size(target_size: int | None) -> None:
    """Raise unless ``target_size`` is None or a positive int."""
    valid = isinstance(target_size, int) and not isinstance(target_size, bool) and target_size >= 1
    if target_size is not None and not valid:
        raise InvalidInputError(f"target_size must be a positive number of pixels or None, got {target_size!r}")


def choose_index(path: Path, index: int | None, count: int, default: int, what: str) -> int:
    """Return ``index`` (or ``default`` when None) after checking it lies in ``0..count-1``."""
    chosen = default if index is None else index
    if not 0 <= chosen < count:
        raise ImageReadError(path, f"{what} {chosen} is out of range (the image has {count} {what}s: 0..{count - 1})")
    return chosen


def require_finite(path: Path, pixels: np.ndarray) -> None:
    """Raise when float ``pixels`` hold NaN or infinite values (integer pixels cannot; one pass when finite)."""
    if pixels.dtype.kind not in "fc" or np.isfinite(pixels).all():
        return
    if np.isnan(pixels).any():
        raise ImageReadError(path, "contains NaN pixels")
    raise ImageReadError(path, "contains infinite pixels")


def one_line(exc: BaseException) -> str:
    """A library exception as a single line: its type and its whitespace-collapsed message."""
    message = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
