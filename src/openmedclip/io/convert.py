"""The single conversion from a :class:`MedicalImage` to the PIL image a CLIP preprocess expects."""

from __future__ import annotations

import numpy as np
from PIL import Image

from openmedclip.io.image import MedicalImage
from openmedclip.io.windowing import window_to_unit


def to_model_input(image: MedicalImage) -> Image.Image:
    """Convert to an 8-bit RGB PIL image, ready for an open_clip-style ``preprocess``.

    Scaling to 0..255, in order of precedence:

    1. ``image.window`` set: ``centre - width/2`` maps to 0 and ``centre + width/2`` to 255, clipped outside.
    2. 8-bit data (``meta["bit_depth"] <= 8`` with all pixels in 0..255): values are kept as they are.
    3. anything else (16-bit, float, HU without a window): min-max scaling of this image to 0..255
       (a constant image becomes 0).

    Values are rounded to the nearest integer. Grey images are repeated into three identical channels.
    MONOCHROME1 inversion already happened in ``read_image``, so bright means dense here too.
    """
    pixels = image.pixels.astype(np.float32, copy=False)
    if image.window is not None:
        scaled = window_to_unit(pixels, image.window) * 255.0
    elif _is_8bit(image):
        scaled = pixels
    else:
        low, high = float(pixels.min()), float(pixels.max())
        scaled = (pixels - low) * (255.0 / (high - low)) if high > low else np.zeros_like(pixels)
    grey_or_rgb = np.rint(np.clip(scaled, 0.0, 255.0)).astype(np.uint8)
    if grey_or_rgb.ndim == 2:
        grey_or_rgb = np.repeat(grey_or_rgb[:, :, None], 3, axis=2)
    return Image.fromarray(grey_or_rgb)


def _is_8bit(image: MedicalImage) -> bool:
    pixels = image.pixels
    return image.meta.get("bit_depth", 16) <= 8 and float(pixels.min()) >= 0.0 and float(pixels.max()) <= 255.0
