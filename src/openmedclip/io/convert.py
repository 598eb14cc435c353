"""The single conversion from a :class:`MedicalImage` to the 8-bit PIL image a CLIP preprocess expects."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import cast

import numpy as np
from PIL import Image

from openmedclip.errors import OpenMedClipWarning
from openmedclip.io.checks import band_rows
from openmedclip.io.image import MedicalImage
from openmedclip.io.voi import HeaderVOI
from openmedclip.io.windowing import window_to_unit


class IntensityScalingWarning(OpenMedClipWarning):
    """``to_model_input`` fell back to per-image min-max scaling (no window for high-bit, float or HU data)."""


def to_model_input(image: MedicalImage) -> Image.Image:
    """Convert to an 8-bit RGB PIL image, ready for an open_clip-style ``preprocess``.

    It is :func:`to_model_picture` with grey pictures repeated into three identical channels.
    """
    picture = to_model_picture(image)
    return picture if picture.mode == "RGB" else picture.convert("RGB")


def to_model_picture(image: MedicalImage) -> Image.Image:
    """Convert to an 8-bit PIL image: mode 'L' for grey images, 'RGB' for colour ones.

    Scaling to 0..255, in order of precedence:

    1. DICOM header VOI (``image.voi``, while ``image.window`` is still ``voi.window`` and
       ``meta["window_source"]`` is not 'user'): pydicom's ``apply_voi_lut`` applies Window
       Center/Width with its VOI LUT Function (LINEAR, LINEAR_EXACT, SIGMOID, PS3.3 C.11.2.1.2) or the
       VOI LUT, and its output range (the window's, or 0..2**bits - 1 of the LUT entries) maps onto
       0..255. For MONOCHROME1 it is applied to the stored orientation and the result reversed.
    2. ``image.window`` set (the caller's window, or a header window without ``voi``):
       ``centre - width/2`` maps to 0 and ``centre + width/2`` to 255, clipped outside.
    3. 8-bit data (``meta["bit_depth"] <= 8`` with all pixels in 0..255): values are kept as they are.
    4. anything else (16-bit, float, HU without a window): min-max scaling of this image to 0..255
       (a constant image becomes 0), with an :class:`IntensityScalingWarning` naming the file.

    Values are rounded to the nearest integer; uint8 8-bit pixels without a window are used as they are (the
    decoded picture itself, when the reader kept it).
    MONOCHROME1 inversion already happened in ``read_image``, so bright means dense here too.
    """
    voi = _header_voi(image)
    if voi is None and image.window is None:
        if image.picture is not None:
            return image.picture
        if image.pixels.dtype == np.uint8 and _is_8bit(image):
            return Image.fromarray(np.ascontiguousarray(image.pixels))
    return _by_bands(image.pixels, _scaling(image, voi))


def grey_if_uniform(picture: Image.Image) -> Image.Image:
    """``picture`` as mode 'L' when it is an RGB picture whose three channels are equal everywhere (a grey image
    stored as colour, as most medical JPEGs are), else ``picture`` itself.

    Resampling the 'L' picture and repeating it into three channels gives the same pixels as resampling the RGB
    one, for a third of the work. Pillow's ``getcolors`` decides it: a grey picture has at most 256 colours, and
    the count stops at the 257th colour of a colour picture.
    """
    if picture.mode != "RGB":
        return picture
    colours = cast("list[tuple[int, tuple[int, int, int]]] | None", picture.getcolors(256))
    if colours is None or any(red != green or green != blue for _, (red, green, blue) in colours):
        return picture
    return picture.getchannel(0)


def _scaling(image: MedicalImage, voi: HeaderVOI | None) -> Callable[[np.ndarray], np.ndarray]:
    """The map from a band of float32 pixels to 0..255 (see :func:`to_model_picture`); warns for min-max scaling."""
    if voi is not None:
        return lambda band: voi.to_unit(band) * 255.0
    window = image.window
    if window is not None:
        return lambda band: window_to_unit(band, window) * 255.0
    if _is_8bit(image):
        return lambda band: band
    low, high = float(np.float32(image.pixels.min())), float(np.float32(image.pixels.max()))
    warnings.warn(
        f"{image.path}: {_data_kind(image)} without a window was min-max scaled to 0..255 over this image's"
        f" own range ({low:g}..{high:g}), so grey levels are not comparable between images; pass"
        " window= to read_image (a preset such as 'lung' or a (centre, width) pair) for a fixed mapping",
        IntensityScalingWarning,
        stacklevel=3,
    )
    if high > low:
        return lambda band: (band - low) * (255.0 / (high - low))
    return np.zeros_like


def _by_bands(pixels: np.ndarray, scaling: Callable[[np.ndarray], np.ndarray]) -> Image.Image:
    """The 8-bit picture of ``pixels`` mapped by ``scaling``, rounded and clipped, computed band by band so the
    float temporaries stay small whatever the image size."""
    rows, columns = pixels.shape[:2]
    picture = Image.new("RGB" if pixels.ndim == 3 else "L", (columns, rows))
    step = band_rows(columns)
    for top in range(0, rows, step):
        band = pixels[top : top + step].astype(np.float32, copy=False)
        scaled = np.rint(np.clip(scaling(band), 0.0, 255.0)).astype(np.uint8)
        picture.paste(Image.fromarray(scaled), (0, top))
    return picture


def _header_voi(image: MedicalImage) -> HeaderVOI | None:
    """The header VOI when it still describes ``image.window`` (no caller's window replaced it)."""
    voi = image.voi
    if voi is None or image.pixels.ndim != 2 or image.meta.get("window_source") == "user":
        return None
    return voi if image.window == voi.window else None


def _is_8bit(image: MedicalImage) -> bool:
    pixels = image.pixels
    if image.meta.get("bit_depth", 16) > 8:
        return False
    return pixels.dtype == np.uint8 or (float(pixels.min()) >= 0.0 and float(pixels.max()) <= 255.0)


def _data_kind(image: MedicalImage) -> str:
    """What was min-max scaled, for the warning."""
    meta = image.meta
    if image.modality == "CT":
        return "CT data (Hounsfield units)"
    if "rescale_slope" in meta or meta.get("modality_lut"):
        return "rescaled DICOM data (Modality LUT)"
    if meta.get("sample_format") == "ieeefp":
        return "float data"
    bits = int(meta.get("bit_depth", 16))
    return f"{bits}-bit data" if bits > 8 else "data outside 0..255"
