"""The decoded pixel hash: one id for an image's content, whatever file format or lossless encoding holds it.

``pixel_hash(pixels)`` is the SHA-256 of the canonical pixel array's dtype, shape and bytes (C order), where the
canonical array is:

- grey ``(H, W)`` when an RGB ``(H, W, 3)`` image has three equal channels (a grey picture stored as RGB);
- ``uint8`` when every value is an integer in 0..255 (8-bit data, whether decoded as uint8 or float32),
  otherwise ``float32``.

So a MedMNIST array, the same image written as PNG, TIFF or lossless WebP, and its RGB copy all hash alike; any
change of a pixel value (lossy re-encoding, resizing, windowing) gives another hash.
"""

from __future__ import annotations

import hashlib

import numpy as np

PIXEL_HASH = "sha256 of the decoded pixels (openmedclip.io.pixel_hash)"
"""How the hashes of training manifests are made, as manifests record it."""


def canonical_pixels(pixels: np.ndarray) -> np.ndarray:
    """The array :func:`pixel_hash` hashes (see the module docstring)."""
    arr = np.asarray(pixels)
    if arr.ndim == 3 and arr.shape[2] == 3 and (arr[..., 1:] == arr[..., :1]).all():
        arr = arr[..., 0]
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if arr.size and arr.min() >= 0 and arr.max() <= 255 and np.array_equal(arr, np.round(arr)):
        return np.ascontiguousarray(arr, dtype=np.uint8)
    return np.ascontiguousarray(arr, dtype=np.float32)


def pixel_hash(pixels: np.ndarray) -> str:
    """Hex SHA-256 of an image's decoded pixels (``MedicalImage.pixels``), as the module docstring defines it."""
    arr = canonical_pixels(pixels)
    digest = hashlib.sha256(f"{arr.dtype.str}|{'x'.join(map(str, arr.shape))}|".encode("ascii"))
    digest.update(arr.tobytes())
    return digest.hexdigest()
