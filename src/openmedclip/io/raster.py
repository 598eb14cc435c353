"""PNG, JPEG and BMP through Pillow: 8-bit images as uint8, 16-bit, 32-bit and float grey values as float32."""

from __future__ import annotations

import re
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from openmedclip.errors import ImageReadError
from openmedclip.io.checks import (
    MAX_PIXELS,
    band_rows,
    check_pixel_count,
    choose_index,
    fill_rows,
    library_warnings,
    one_line,
    reduced_shape,
    reduction_factor,
)
from openmedclip.io.image import MedicalImage

_GREY_BITS = {"I;16": 16, "I;16B": 16, "I;16L": 16, "I;16N": 16, "I": 32, "F": 32}
"""High-bit grey modes (read as float32) and their bits per sample."""
_EXIF_ORIENTATION = 0x0112
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
"""EXIF orientation -> the transpose that shows the pixels as a viewer does (as ``ImageOps.exif_transpose``)."""
_DRAFT_MODES = ("L", "RGB")
_UNREADABLE = "cannot read image (corrupt, truncated or unsupported)"


def read_raster(
    path: Path, *, frame: int | None = None, data: bytes | None = None, target_size: int | None = None
) -> MedicalImage:
    """Read a PNG/JPEG/BMP file.

    Grey modes (8-bit, 16-bit, 32-bit integer, float) stay grey with their values; other modes
    (palette, RGBA, CMYK, YCbCr, ...) become RGB with any alpha channel dropped. 8-bit pixels come out as
    uint8, the others as float32. An EXIF orientation tag is applied (the pixels come out as a viewer shows
    them) and recorded in ``meta["exif_orientation"]``. ``frame`` picks a frame of animated or
    multi-picture files (default 0). ``data`` holds the file's bytes when it is not on disk (``path`` then
    only names it).

    ``target_size`` (pixels) reads large images at reduced scale, keeping both sides at least
    ``2 * target_size``: a baseline JPEG decodes at 1/2, 1/4 or 1/8 scale (Pillow's ``draft``), then the decoded
    image is reduced by the largest integer factor that still keeps both sides that large (the mean of each
    factor x factor block, as ``Image.reduce``). The pixels then differ slightly from a full decode;
    ``meta["reduced_scale"]`` records the overall divisor when that happened. Library warnings come out as one
    :class:`~openmedclip.io.checks.ReadWarning` line naming the file (Pillow's decompression bomb warning is
    dropped: :data:`~openmedclip.io.checks.MAX_PIXELS` guards against that).
    """
    try:
        with (
            library_warnings(path, ignore=(Image.DecompressionBombWarning,)),
            Image.open(BytesIO(data) if data is not None else path) as opened,
        ):
            check_pixel_count(path, opened.height, opened.width)
            n_frames = getattr(opened, "n_frames", 1)
            index = choose_index(path, frame, n_frames, 0, "frame")
            opened.seek(index)
            scale = _draft(opened, target_size)
            opened.load()
            factor = reduction_factor(opened.height, opened.width, target_size)
            orientation = opened.getexif().get(_EXIF_ORIENTATION, 1)
            source_format = (opened.format or "raster").lower()
            mode = opened.mode
            pixels, bit_depth = _pixels(opened, factor, _TRANSPOSE.get(orientation))
    except ImageReadError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageReadError(path, _too_large(exc)) from exc
    except UnidentifiedImageError as exc:  # its message names the file again
        raise ImageReadError(path, f"{_UNREADABLE}: Pillow cannot identify the image format") from exc
    except Exception as exc:
        raise ImageReadError(path, f"{_UNREADABLE}: {one_line(exc)}") from exc
    meta = {
        "format": source_format,
        "bit_depth": bit_depth,
        "mode": mode,
        "frame": index,
        "n_frames": n_frames,
        "inverted": False,
        "spacing": None,
        "exif_orientation": orientation,
    }
    if scale * factor > 1:
        meta["reduced_scale"] = scale * factor
    photometric = "RGB" if _is_colour(pixels) else "MONOCHROME2"
    return MedicalImage(pixels=pixels, path=str(path), photometric=photometric, meta=meta)


def _is_colour(pixels: np.ndarray | Image.Image) -> bool:
    return pixels.mode == "RGB" if isinstance(pixels, Image.Image) else pixels.ndim == 3


def _too_large(exc: Image.DecompressionBombError) -> str:
    """Pillow's refusal of a huge image, worded as :func:`check_pixel_count` words ours."""
    counted = re.search(r"\((\d+) pixels\)", str(exc))
    size = f"{counted.group(1)} pixels; " if counted else ""
    return f"image is too large ({size}the limit is {MAX_PIXELS} = 2^27)"


def _draft(opened: Image.Image, target_size: int | None) -> int:
    """Ask a JPEG for reduced-scale decoding keeping both sides >= ``2 * target_size``; return the divisor."""
    if target_size is None or opened.format != "JPEG" or opened.mode not in _DRAFT_MODES:
        return 1
    width = opened.width
    opened.draft(opened.mode, (2 * target_size, 2 * target_size))
    return -(-width // opened.width)


def _pixels(
    image: Image.Image, factor: int, transpose: Image.Transpose | None
) -> tuple[np.ndarray | Image.Image, int]:
    """Pixels, reduced by ``factor`` and transposed, and bits per stored sample for a loaded Pillow image: 8-bit
    modes as an 'L' or 'RGB' picture (``MedicalImage`` makes it the uint8 array when asked), the others as
    float32, converted band by band (no second full-size copy)."""
    if image.mode in _GREY_BITS:
        oriented = image.transpose(transpose) if transpose is not None else image
        out = np.empty(reduced_shape(oriented.height, oriented.width, factor), np.float32)
        return fill_rows(out, _bands(oriented, factor), factor), _GREY_BITS[image.mode]
    picture = _picture(image, factor)
    return (picture.transpose(transpose) if transpose is not None else picture), 8


def _picture(image: Image.Image, factor: int) -> Image.Image:
    """An 8-bit image as an 'L' or 'RGB' picture reduced by ``factor``; other modes (palette, alpha, bilevel,
    CMYK, ...) are converted band by band, so no second full-size image is made."""
    if image.mode in ("L", "RGB"):
        return image.reduce(factor) if factor > 1 else image
    mode = "L" if image.mode in ("1", "LA", "La") else "RGB"
    rows, columns = reduced_shape(image.height, image.width, factor)
    picture = Image.new(mode, (columns, rows))
    step = band_rows(image.width, factor)
    for top in range(0, image.height, step):
        band = image.crop((0, top, image.width, min(top + step, image.height))).convert(mode)
        picture.paste(band.reduce(factor) if factor > 1 else band, (0, top // factor))
    return picture


def _bands(image: Image.Image, factor: int) -> Iterator[np.ndarray]:
    """The rows of a high-bit grey image, top to bottom, as arrays of a band of rows each."""
    step = band_rows(image.width, factor)
    for top in range(0, image.height, step):
        yield np.asarray(image.crop((0, top, image.width, min(top + step, image.height))))
