"""Whether an image carries anything a model can read: big enough and not one flat value. Images that fail are
reported as bad items, never classified."""

from __future__ import annotations

import numpy as np

from openmedclip.errors import ImageReadError
from openmedclip.io.image import MedicalImage

MIN_SIDE = 16
"""Smallest height and width (pixels) given to a model; smaller images are upscaled noise."""


def check_content(image: MedicalImage) -> MedicalImage:
    """``image`` unchanged, or ``ImageReadError`` naming it when a side is below :data:`MIN_SIDE` pixels or every
    pixel holds the same value."""
    picture = image.picture
    height, width = (picture.height, picture.width) if picture is not None else image.pixels.shape[:2]
    if min(height, width) < MIN_SIDE:
        raise ImageReadError(
            image.path, f"image is too small ({width}x{height} pixels; at least {MIN_SIDE}x{MIN_SIDE} needed)"
        )
    if picture is not None:
        extrema = picture.getextrema()
        bands = extrema if isinstance(extrema[0], tuple) else (extrema,)
        constant = all(low == high for low, high in bands)
    else:
        pixels = image.pixels
        constant = bool(np.all(pixels == pixels.reshape(-1, *pixels.shape[2:])[0]))
    if constant:
        value = np.asarray(image.pixels[0, 0]).tolist()
        raise ImageReadError(image.path, f"image is constant (every pixel is {_value(value)}): nothing to classify")
    return image


def _value(value: float | list[float]) -> str:
    if isinstance(value, list):
        return "(" + ", ".join(_value(part) for part in value) + ")"
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
