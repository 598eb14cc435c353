"""TIFF through tifffile: 8-bit samples as uint8, 16-bit, 32-bit and float samples as stored (float32)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from io import BytesIO
from itertools import chain, groupby
from pathlib import Path

import numpy as np
import tifffile
from tifffile import PHOTOMETRIC, PLANARCONFIG, SAMPLEFORMAT

from openmedclip.errors import ImageReadError
from openmedclip.io.checks import (
    check_float_values,
    check_pixel_count,
    fill_rows,
    library_warnings,
    one_line,
    reduced_shape,
    reduction_factor,
    row_bands,
)
from openmedclip.io.image import MedicalImage

_GREY = (PHOTOMETRIC.MINISBLACK, PHOTOMETRIC.MINISWHITE)
_COLOUR = (PHOTOMETRIC.RGB, PHOTOMETRIC.YCBCR)
_AXES = ("YX", "YXS", "SYX")
"""Page layouts read: grey, samples last (contiguous), samples first (separate planes)."""

_READ_AHEAD = 2**24
"""Bytes of strips or tiles read from the file at a time."""

Convert = Callable[[np.ndarray], np.ndarray]
"""Maps a band of samples, (rows, columns, samples), to the pixels of those rows."""


def read_tiff(
    path: Path, *, frame: int | None = None, data: bytes | None = None, target_size: int | None = None
) -> MedicalImage:
    """Read one page of the first image series of a TIFF file.

    A file with several pages (a stack) needs ``frame``; without it the read fails naming the page count.
    Min-is-white grey pages are reflected (``offset - value``, offset = largest minus smallest
    representable value for integer samples, data max + min for float) so bright means dense.
    Palette pages become 8-bit RGB; RGB/YCbCr pages keep their first three samples (alpha dropped).
    ``data`` holds the file's bytes when it is not on disk (``path`` then only names it).

    Strips and tiles are decoded one row of them at a time and converted as they come, so memory holds the
    pixels returned and one such row beside them (a page stored as separate sample planes is decoded whole).
    ``target_size`` (pixels) reduces a large page by the largest integer factor that keeps both sides at least
    ``2 * target_size`` (the mean of each factor x factor block, recorded in ``meta["reduced_scale"]``; the float
    min-is-white offset is then that of the reduced data).
    Library warnings come out as one :class:`~openmedclip.io.checks.ReadWarning` line naming the file.
    """
    with library_warnings(path), _open(path, data) as tif:
        stored, page, index, n_frames = _page(path, tif, frame)
        check_pixel_count(path, page.imagelength, page.imagewidth)
        convert, dtype, photometric = _interpretation(path, page)
        factor = reduction_factor(page.imagelength, page.imagewidth, target_size)
        rows, columns = reduced_shape(page.imagelength, page.imagewidth, factor)
        if photometric == "RGB" and np.dtype(dtype) != np.uint8:
            check_float_values(path, rows, columns, 3)
        out: np.ndarray = np.empty((rows, columns, 3) if photometric == "RGB" else (rows, columns), dtype)
        try:
            fill_rows(out, map(convert, _sample_rows(stored, page, factor)), factor)
        except Exception as exc:
            raise ImageReadError(path, _decode_problem(page, exc)) from exc
    inverted = page.photometric == PHOTOMETRIC.MINISWHITE
    meta = {
        "format": "tiff",
        "bit_depth": 8 if page.photometric == PHOTOMETRIC.PALETTE else int(page.bitspersample),
        "sample_format": SAMPLEFORMAT(page.sampleformat).name.lower(),
        "frame": index,
        "n_frames": n_frames,
        "inverted": inverted,
        "spacing": None,
    }
    if inverted:
        meta["inversion_offset"] = _invert(out, page)
    if factor > 1:
        meta["reduced_scale"] = factor
    return MedicalImage(pixels=out, path=str(path), photometric=photometric, meta=meta)


def _open(path: Path, data: bytes | None) -> tifffile.TiffFile:
    """The parsed file, or an error saying it is not a readable TIFF."""
    try:
        return tifffile.TiffFile(BytesIO(data) if data is not None else path)
    except Exception as exc:
        raise ImageReadError(path, f"not a readable TIFF file: {one_line(exc)}") from exc


def _page(
    path: Path, tif: tifffile.TiffFile, frame: int | None
) -> tuple[tifffile.TiffPage | tifffile.TiffFrame, tifffile.TiffPage, int, int]:
    """The chosen page of the first series, its key page (tags), its index and the number of pages."""
    if not tif.series:
        raise ImageReadError(path, "TIFF file holds no image")
    pages = tif.series[0].pages
    n_frames = len(pages)
    if frame is None and n_frames > 1:
        raise ImageReadError(path, f"TIFF stack has {n_frames} pages; pass frame=0..{n_frames - 1} to choose one")
    index = 0 if frame is None else frame
    if not 0 <= index < n_frames:
        raise ImageReadError(path, f"frame {index} is out of range (the TIFF has {n_frames} pages: 0..{n_frames - 1})")
    stored = pages[index]
    page = None if stored is None else stored.keyframe
    if stored is None or page is None:
        raise ImageReadError(path, f"TIFF page {index} is missing from the file")
    if page.axes not in _AXES:
        raise ImageReadError(
            path, f"unsupported TIFF page layout (axes '{page.axes}'; expected a 2-D grey or colour page)"
        )
    return stored, page, index, n_frames


def _interpretation(path: Path, page: tifffile.TiffPage) -> tuple[Convert, type, str]:
    """How a band of samples becomes pixels, the pixels' dtype and the photometric (min-is-white is inverted
    afterwards, by :func:`_invert`)."""
    kind = page.photometric
    as_stored = np.uint8 if _is_uint8(page) else np.float32
    samples = int(page.samplesperpixel)
    if kind in _GREY:
        return (lambda band: band[:, :, 0]), as_stored, "MONOCHROME2"
    if kind in _COLOUR and samples >= 3:
        return (lambda band: band[:, :, :3]), as_stored, "RGB"
    if kind == PHOTOMETRIC.PALETTE and page.colormap is not None and samples == 1:
        colormap = page.colormap.astype(np.float32)
        if colormap.max() > 255:
            colormap /= 257.0
        return (lambda band: colormap[:, band[:, :, 0]].transpose(1, 2, 0)), np.float32, "RGB"
    shape = (page.imagelength, page.imagewidth) + ((samples,) if samples > 1 else ())
    raise ImageReadError(
        path, f"unsupported TIFF photometric interpretation {getattr(kind, 'name', kind)} with shape {shape}"
    )


def _sample_rows(
    stored: tifffile.TiffPage | tifffile.TiffFrame, page: tifffile.TiffPage, factor: int
) -> Iterator[np.ndarray]:
    """The page's samples as (rows, columns, samples) bands, top to bottom: a strip or a row of tiles at a time
    when the samples are contiguous, else bands of the whole decoded page."""
    if page.planarconfig == PLANARCONFIG.CONTIG or page.samplesperpixel == 1:
        yield from _segment_rows(stored, page)
        return
    yield from row_bands(np.moveaxis(stored.asarray(), 0, -1), factor)


def _segment_rows(stored: tifffile.TiffPage | tifffile.TiffFrame, page: tifffile.TiffPage) -> Iterator[np.ndarray]:
    """The decoded strips, or rows of tiles, of a page with contiguous samples, top to bottom."""
    length, width = page.imagelength, page.imagewidth
    done = 0
    # one decoding thread (with several, tifffile holds every decoded segment of a read-ahead chunk at once) and
    # a small read-ahead of compressed bytes
    segments = stored.segments(maxworkers=1, buffersize=_READ_AHEAD)
    for top, group in groupby(segments, key=lambda result: result[1][2]):  # a strip, or a row of tiles
        first = next(group)
        band = np.empty((min(first[2][1], length - top), width, page.samplesperpixel), page.dtype)
        for segment, (_, _, _, x, _), shape in chain([first], group):
            band[:, x : x + shape[2]] = page.nodata if segment is None else segment[0, : len(band), : width - x]
        done += len(band)
        yield band
    if done != length:
        raise ValueError(f"the page's strips or tiles hold {done} of its {length} rows")


def _decode_problem(page: tifffile.TiffPage, exc: Exception) -> str:
    if "imagecodecs" in str(exc):
        compression = getattr(page.compression, "name", page.compression)
        return f"TIFF compression {compression} needs the 'imagecodecs' package (pip install imagecodecs)"
    return f"corrupt or truncated TIFF data: {one_line(exc)}"


def _is_uint8(page: tifffile.TiffPage) -> bool:
    """Whether the page holds full 8-bit unsigned samples (kept as uint8; min-is-white 255 - value stays in range)."""
    return page.dtype == np.uint8 and page.bitspersample == 8 and page.sampleformat == SAMPLEFORMAT.UINT


def _invert(pixels: np.ndarray, page: tifffile.TiffPage) -> float:
    """Reflect min-is-white ``pixels`` in place (``offset - value``, band by band); return the offset."""
    offset = _inversion_offset(pixels, page)
    for band in row_bands(pixels):
        band[...] = offset - band.astype(np.float64)
    return offset


def _inversion_offset(pixels: np.ndarray, page: tifffile.TiffPage) -> float:
    """Smallest plus largest representable sample value (data min + max for float samples)."""
    if page.sampleformat == SAMPLEFORMAT.UINT:
        return float(2 ** int(page.bitspersample) - 1)
    if page.sampleformat == SAMPLEFORMAT.INT:
        return -1.0
    return float(pixels.min()) + float(pixels.max())
