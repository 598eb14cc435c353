"""TIFF through tifffile: 8-bit samples as uint8, 16-bit, 32-bit and float samples as stored (float32)."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import numpy as np
import tifffile
from tifffile import PHOTOMETRIC, SAMPLEFORMAT

from openmedclip.errors import ImageReadError
from openmedclip.io.checks import check_pixel_count, one_line
from openmedclip.io.image import MedicalImage

_GREY = (PHOTOMETRIC.MINISBLACK, PHOTOMETRIC.MINISWHITE)
_COLOUR = (PHOTOMETRIC.RGB, PHOTOMETRIC.YCBCR)


def read_tiff(path: Path, *, frame: int | None = None, data: bytes | None = None) -> MedicalImage:
    """Read one page of the first image series of a TIFF file.

    A file with several pages (a stack) needs ``frame``; without it the read fails naming the page count.
    Min-is-white grey pages are reflected (``offset - value``, offset = largest minus smallest
    representable value for integer samples, data max + min for float) so bright means dense.
    Palette pages become 8-bit RGB; RGB/YCbCr pages keep their first three samples (alpha dropped).
    ``data`` holds the file's bytes when it is not on disk (``path`` then only names it).
    """
    try:
        tif = tifffile.TiffFile(BytesIO(data) if data is not None else path)
    except Exception as exc:
        raise ImageReadError(path, f"not a readable TIFF file: {one_line(exc)}") from exc
    with tif:
        if not tif.series:
            raise ImageReadError(path, "TIFF file holds no image")
        pages = tif.series[0].pages
        n_frames = len(pages)
        if frame is None and n_frames > 1:
            raise ImageReadError(path, f"TIFF stack has {n_frames} pages; pass frame=0..{n_frames - 1} to choose one")
        index = 0 if frame is None else frame
        if not 0 <= index < n_frames:
            raise ImageReadError(
                path, f"frame {index} is out of range (the TIFF has {n_frames} pages: 0..{n_frames - 1})"
            )
        stored = pages[index]
        page = None if stored is None else stored.keyframe
        if stored is None or page is None:
            raise ImageReadError(path, f"TIFF page {index} is missing from the file")
        check_pixel_count(path, page.imagelength, page.imagewidth)
        try:
            array = stored.asarray()
        except Exception as exc:
            raise ImageReadError(path, _decode_problem(page, exc)) from exc
    samples = _samples_last(path, array, page.axes)
    pixels, photometric, inverted, offset = _interpret(path, samples, page)
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
        meta["inversion_offset"] = offset
    return MedicalImage(pixels=pixels, path=str(path), photometric=photometric, meta=meta)


def _decode_problem(page: tifffile.TiffPage, exc: Exception) -> str:
    if "imagecodecs" in str(exc):
        compression = getattr(page.compression, "name", page.compression)
        return f"TIFF compression {compression} needs the 'imagecodecs' package (pip install imagecodecs)"
    return f"corrupt or truncated TIFF data: {one_line(exc)}"


def _samples_last(path: Path, data: np.ndarray, axes: str) -> np.ndarray:
    """Return the page as (H, W) or (H, W, samples)."""
    if axes in ("YX", "YXS"):
        return data
    if axes == "SYX":
        return np.moveaxis(data, 0, -1)
    raise ImageReadError(path, f"unsupported TIFF page layout (axes '{axes}'; expected a 2-D grey or colour page)")


def _interpret(path: Path, samples: np.ndarray, page: tifffile.TiffPage) -> tuple[np.ndarray, str, bool, float | None]:
    """Pixels, photometric, whether they were inverted, and the inversion offset."""
    kind = page.photometric
    as_stored = np.uint8 if _is_uint8(samples, page) else np.float32
    if kind in _GREY:
        grey = samples if samples.ndim == 2 else samples[:, :, 0]
        if kind == PHOTOMETRIC.MINISBLACK:
            return grey.astype(as_stored), "MONOCHROME2", False, None
        offset = _inversion_offset(grey, page)
        return (offset - grey.astype(np.float64)).astype(as_stored), "MONOCHROME2", True, offset
    if kind in _COLOUR and samples.ndim == 3 and samples.shape[2] >= 3:
        return samples[:, :, :3].astype(as_stored), "RGB", False, None
    if kind == PHOTOMETRIC.PALETTE and page.colormap is not None and samples.ndim == 2:
        colormap = page.colormap.astype(np.float32)
        if colormap.max() > 255:
            colormap /= 257.0
        return colormap[:, samples].transpose(1, 2, 0), "RGB", False, None
    raise ImageReadError(
        path, f"unsupported TIFF photometric interpretation {getattr(kind, 'name', kind)} with shape {samples.shape}"
    )


def _is_uint8(samples: np.ndarray, page: tifffile.TiffPage) -> bool:
    """Whether the page holds full 8-bit unsigned samples (kept as uint8; min-is-white 255 - value stays in range)."""
    return samples.dtype == np.uint8 and page.bitspersample == 8 and page.sampleformat == SAMPLEFORMAT.UINT


def _inversion_offset(grey: np.ndarray, page: tifffile.TiffPage) -> float:
    """Smallest plus largest representable sample value (data min + max for float samples)."""
    if page.sampleformat == SAMPLEFORMAT.UINT:
        return float(2 ** int(page.bitspersample) - 1)
    if page.sampleformat == SAMPLEFORMAT.INT:
        return -1.0
    return float(grey.min()) + float(grey.max())
