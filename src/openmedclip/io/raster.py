"""PNG, JPEG and BMP through Pillow: 8-bit images as uint8, 16-bit, 32-bit and float grey values as float32."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from openmedclip.errors import ImageReadError
from openmedclip.io.checks import check_pixel_count, choose_index, one_line
from openmedclip.io.image import MedicalImage

_GREY_BITS = {"L": 8, "I;16": 16, "I;16B": 16, "I;16L": 16, "I;16N": 16, "I": 32, "F": 32}
_EXIF_ORIENTATION = 0x0112
_DRAFT_MODES = ("L", "RGB")


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

    ``target_size`` (pixels) lets a baseline JPEG decode at 1/2, 1/4 or 1/8 scale (Pillow's ``draft``), the
    largest that keeps both sides at least ``2 * target_size``; the pixels then differ slightly from a
    full decode. ``meta["reduced_scale"]`` records the divisor when that happened.
    """
    try:
        with Image.open(BytesIO(data) if data is not None else path) as opened:
            check_pixel_count(path, opened.height, opened.width)
            n_frames = getattr(opened, "n_frames", 1)
            index = choose_index(path, frame, n_frames, 0, "frame")
            opened.seek(index)
            scale = _draft(opened, target_size)
            opened.load()
            orientation = opened.getexif().get(_EXIF_ORIENTATION, 1)
            source_format = (opened.format or "raster").lower()
            mode = opened.mode
            pixels, bit_depth = _pixels(ImageOps.exif_transpose(opened) if orientation != 1 else opened)
    except ImageReadError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageReadError(path, f"image is too large: {one_line(exc)}") from exc
    except Exception as exc:
        raise ImageReadError(path, f"cannot read image (corrupt, truncated or unsupported): {one_line(exc)}") from exc
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
    if scale > 1:
        meta["reduced_scale"] = scale
    photometric = "RGB" if _is_colour(pixels) else "MONOCHROME2"
    return MedicalImage(pixels=pixels, path=str(path), photometric=photometric, meta=meta)


def _is_colour(pixels: np.ndarray | Image.Image) -> bool:
    return pixels.mode == "RGB" if isinstance(pixels, Image.Image) else pixels.ndim == 3


def _draft(opened: Image.Image, target_size: int | None) -> int:
    """Ask a JPEG for reduced-scale decoding keeping both sides >= ``2 * target_size``; return the divisor."""
    if target_size is None or opened.format != "JPEG" or opened.mode not in _DRAFT_MODES:
        return 1
    width = opened.width
    opened.draft(opened.mode, (2 * target_size, 2 * target_size))
    return -(-width // opened.width)


def _pixels(image: Image.Image) -> tuple[np.ndarray | Image.Image, int]:
    """Pixels and bits per stored sample for a loaded Pillow image: 8-bit modes as an 'L' or 'RGB' picture
    (``MedicalImage`` makes it the uint8 array when asked), the others as float32."""
    if image.mode in ("L", "RGB"):
        return image, 8
    if image.mode in _GREY_BITS:
        return np.asarray(image).astype(np.float32), _GREY_BITS[image.mode]
    if image.mode in ("1", "LA", "La"):
        return image.convert("L"), 8
    return image.convert("RGB"), 8
