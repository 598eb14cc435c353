"""Display windows: named presets, validation, and mapping pixels through a window."""

from __future__ import annotations

import math

import numpy as np

from openmedclip.errors import InvalidInputError

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


def window_to_unit(pixels: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """Map ``centre - width/2 .. centre + width/2`` linearly onto 0..1, clipping outside (float32)."""
    centre, width = window
    low = centre - width / 2.0
    return np.clip((pixels.astype(np.float32) - np.float32(low)) / np.float32(width), 0.0, 1.0)
