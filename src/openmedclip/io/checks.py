"""Checks and helpers shared by the readers: file presence, size limit, index ranges, finite pixels, reading at
reduced scale in bounded memory, library warnings, and error wording."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from openmedclip.errors import ImageReadError, InvalidInputError, OpenMedClipWarning

MAX_PIXELS = 2**27
"""Largest image (rows x columns) read, about 134 million pixels: a guard against decompression bombs."""

BAND_PIXELS = 2**20
"""Pixels per band when a large image is converted or reduced band by band (bounding the temporaries)."""


class ReadWarning(OpenMedClipWarning):
    """Something about a file worth knowing that did not stop it being read; the message starts with the file."""


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


MAX_FLOAT_VALUES = 2**28
"""Most float32 values (1 GiB) an image beyond 8 bits may decode to at full size: keeps colour images of 16-bit
or float samples, whose conversion to model input needs a few such copies, under 2 GB in all."""


def check_float_values(path: Path, rows: int, columns: int, samples: int) -> None:
    """Raise when ``rows`` x ``columns`` x ``samples`` float32 values are above :data:`MAX_FLOAT_VALUES`."""
    values = rows * columns * samples
    if values > MAX_FLOAT_VALUES:
        raise ImageReadError(
            path,
            f"image is too large ({columns}x{rows} pixels x {samples} samples beyond 8 bits = {values} values; the "
            f"limit is {MAX_FLOAT_VALUES} = 2^28 values, 1 GiB as float32; an 8-bit copy, or tiles of it, can be "
            "read)",
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


def reduction_factor(rows: int, columns: int, target_size: int | None) -> int:
    """The largest integer divisor that keeps both sides at least ``2 * target_size`` (1: read at full size)."""
    if target_size is None:
        return 1
    return max(1, min(rows, columns) // (2 * target_size))


def reduced_shape(rows: int, columns: int, factor: int) -> tuple[int, int]:
    """``(rows, columns)`` after reducing by ``factor``: partial blocks at the bottom and right edges count."""
    return -(-rows // factor), -(-columns // factor)


def band_rows(columns: int, factor: int = 1) -> int:
    """Rows per band of an image ``columns`` wide: about :data:`BAND_PIXELS` pixels, a multiple of ``factor``."""
    return max(1, BAND_PIXELS // (columns * factor)) * factor


def row_bands(pixels: np.ndarray, factor: int = 1) -> Iterator[np.ndarray]:
    """``pixels`` as views of consecutive bands of rows (each a multiple of ``factor`` rows but the last)."""
    step = band_rows(pixels.shape[1], factor)
    for top in range(0, pixels.shape[0], step):
        yield pixels[top : top + step]


def fill_rows(out: np.ndarray, blocks: Iterable[np.ndarray], factor: int = 1) -> np.ndarray:
    """Fill ``out`` from consecutive blocks of rows (any heights) that make up an image, top to bottom.

    With ``factor`` 1 the rows are copied (cast to ``out``'s dtype); otherwise each ``factor`` x ``factor``
    block of the image becomes its mean (edge blocks: the mean of the pixels they hold), rounded half up for an
    integer ``out``. ``out`` may be a strided view. Returns ``out``.
    """
    row = 0
    pending = None  # the last rows of a block that do not fill a row of factor x factor blocks (a copy)
    for block in blocks:
        if pending is not None:
            missing = factor - len(pending)
            head, block = np.concatenate([pending, block[:missing]]), block[missing:]
            if len(head) < factor:
                pending = head
                continue
            row = _put(out, row, head, factor)
        usable = len(block) - len(block) % factor
        row = _put(out, row, block[:usable], factor)
        pending = block[usable:].copy() if usable < len(block) else None
    if pending is not None:
        _put(out, row, pending, factor)
    return out


def _put(out: np.ndarray, row: int, block: np.ndarray, factor: int) -> int:
    """Write ``block`` (reduced by ``factor``, a band at a time) into ``out`` from ``row``; return the next row."""
    for band in row_bands(block, factor):
        values = band if factor == 1 else _block_means(band, factor)
        if factor > 1 and out.dtype.kind in "ui":
            values = np.floor(values + 0.5)
        out[row : row + len(values)] = values
        row += len(values)
    return row


def _block_means(block: np.ndarray, factor: int) -> np.ndarray:
    """Float64 means of the ``factor`` x ``factor`` blocks of ``block`` (rows, columns[, channels])."""
    row_starts = np.arange(0, block.shape[0], factor)
    column_starts = np.arange(0, block.shape[1], factor)
    sums = np.add.reduceat(np.add.reduceat(block, row_starts, axis=0, dtype=np.float64), column_starts, axis=1)
    heights = np.diff(np.append(row_starts, block.shape[0]))
    widths = np.diff(np.append(column_starts, block.shape[1]))
    counts = np.multiply.outer(heights, widths).reshape(sums.shape[:2] + (1,) * (block.ndim - 2))
    return sums / counts


@contextmanager
def library_warnings(
    path: Path, ignore: tuple[type[Warning], ...] = ()
) -> Iterator[list[warnings.WarningMessage]]:
    """Catch the warnings raised inside (by the imaging libraries; the list of them is yielded) and, after a
    successful read, re-issue each distinct one as a one-line :class:`ReadWarning` naming ``path``; ``ignore``
    lists categories dropped (problems the reader handles itself). openmedclip's own warnings pass on unchanged."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught
    issued: set[str] = set()
    for warning in caught:
        if issubclass(warning.category, ignore):
            continue
        if warning.category.__module__.startswith("openmedclip"):
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
            continue
        message = f"{path}: {' '.join(str(warning.message).split())}"
        if message not in issued:
            issued.add(message)
            warnings.warn(message, ReadWarning, stacklevel=3)
