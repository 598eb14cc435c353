"""Display windows: named presets, validation, and mapping pixels through a window."""

from __future__ import annotations

import math

import numpy as np

from openmedclip.errors import InvalidInputError
from openmedclip.io.image import MedicalImage

WINDOW_PRESETS: dict[str, tuple[float, float]] = {
    "lung": (-600.0, 1500.0),
    "mediastinum": (50.0, 350.0),
    "bone": (400.0, 1800.0),
    "brain": (40.0, 80.0),
    "abdomen": (40.0, 400.0),
    "soft tissue": (40.0, 400.0),
    "liver": (30.0, 150.0),
}
"""CT windows as (centre, width) in Hounsfield units. Names are matched case-insensitively,
with ``_`` and ``-`` read as spaces ("Soft_Tissue" is "soft tissue")."""


WINDOW_USAGE = "a preset name or 'centre,width' (e.g. lung, or 40,400: two numbers, width > 0)"


def resolve_window(window: str | tuple[float, float] | None) -> tuple[float, float] | None:
    """Turn a preset name, a ``'centre,width'`` string or a ``(centre, width)`` pair into a checked
    ``(centre, width)``; None stays None."""
    if window is None:
        return None
    if isinstance(window, str) and "," in window:
        try:
            window = tuple(float(part) for part in window.split(","))  # type: ignore[assignment]
        except ValueError:
            raise InvalidInputError(f"window {window!r}: expected {WINDOW_USAGE}") from None
    if isinstance(window, str):
        key = " ".join(window.lower().replace("_", " ").replace("-", " ").split())
        if key not in WINDOW_PRESETS:
            raise InvalidInputError(f"unknown window preset '{window}'; known presets: {', '.join(WINDOW_PRESETS)}")
        return WINDOW_PRESETS[key]
    try:
        centre, width = (float(value) for value in window)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"window {window!r}: expected {WINDOW_USAGE}") from exc
    if not (math.isfinite(centre) and math.isfinite(width)) or width <= 0:
        raise InvalidInputError(f"window (centre, width) must be finite with width > 0, got {window!r}")
    return centre, width


HU_AIR_BELOW = -500.0
"""A NIfTI slice whose values reach this low is taken as CT in Hounsfield units (air is about -1000 HU)."""


def is_preset(window: str | tuple[float, float] | None) -> bool:
    """Whether ``window`` names a preset (in Hounsfield units) rather than giving ``centre,width`` numbers."""
    return isinstance(window, str) and "," not in window


def window_problem(image: MedicalImage, preset: bool) -> str | None:
    """Why a window does not fit ``image`` (None when it does).

    A preset is in Hounsfield units, so it needs CT: a DICOM with Modality CT, or a NIfTI slice reaching
    :data:`HU_AIR_BELOW`. Numbers in pixel units also fit any image whose DICOM header carries a window (its
    values have a display range the numbers can refer to). 8-bit pictures, 16-bit PNG/TIFF of unknown units and
    X-ray DICOMs take no preset.
    """
    kind = image.meta.get("format", "image")
    if kind == "dicom" and image.modality == "CT":
        return None
    if kind == "nifti" and image.pixels.size and float(image.pixels.min()) <= HU_AIR_BELOW:
        return None
    if not preset and image.window is not None:
        return None
    if kind == "dicom":
        what = f"{image.modality} DICOM" if image.modality else "DICOM without a modality"
    else:
        what = f"{image.meta.get('bit_depth', '?')}-bit {str(kind).upper()} image"
    needs = "CT in Hounsfield units" if preset else "CT in Hounsfield units or a DICOM with a header window"
    return f"a window applies only to {needs}; this is {_article(what)} {what}"


def _article(noun: str) -> str:
    return "an" if noun[0] in "AEIOU8" or noun.startswith(("11-", "18-")) else "a"


def window_to_unit(pixels: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """Map ``centre - width/2 .. centre + width/2`` linearly onto 0..1, clipping outside (float32)."""
    centre, width = window
    low = centre - width / 2.0
    return np.clip((pixels.astype(np.float32) - np.float32(low)) / np.float32(width), 0.0, 1.0)
