"""GLoRIA's image preprocessing: grey, long side to 256 by area averaging, zero-padded to a centred square, centre
crop 224, three equal channels normalised with mean 0.5 and std 0.5 (the model itself then upsamples to 299).

The resize is exact area averaging (each output pixel is the overlap-weighted mean of the source pixels it
covers), which is what OpenCV's ``INTER_AREA`` computes when shrinking; the smaller side is truncated to an integer
as GLoRIA computes it.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from openmedclip.io import MedicalImage, to_model_picture
from openmedclip.models.family import Geometry

RESIZE = 256
CROP = 224
CROP_START = round((RESIZE - CROP) / 2.0)
"""torchvision's ``CenterCrop`` offset."""


def resized_size(rows: int, columns: int, target: int = RESIZE) -> tuple[int, int]:
    """The size GLoRIA resizes a ``rows × columns`` image to: long side ``target``, the other truncated."""
    if rows >= columns:
        return target, int(float(columns) * (target / float(rows)))
    return int(float(rows) * (target / float(columns))), target


def _area_weights(source: int, target: int) -> np.ndarray:
    """``[target, source]`` weights: output pixel i averages source interval [i, i+1) · source/target."""
    edges = np.arange(target + 1, dtype=np.float64) * (source / target)
    starts, ends = edges[:-1, None], edges[1:, None]
    pixels = np.arange(source, dtype=np.float64)[None, :]
    overlap = np.clip(np.minimum(pixels + 1, ends) - np.maximum(pixels, starts), 0.0, None)
    return overlap / overlap.sum(axis=1, keepdims=True)


def area_resize(grey: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``grey`` (uint8, rows × columns) resized to ``size`` by area averaging, rounded to uint8."""
    rows = _area_weights(grey.shape[0], size[0])
    columns = _area_weights(grey.shape[1], size[1])
    values = rows @ grey.astype(np.float64) @ columns.T
    return np.clip(np.floor(values + 0.5), 0, 255).astype(np.uint8)


def _padding(size: tuple[int, int]) -> tuple[int, int]:
    """Top and left zero padding that centres ``size`` on the RESIZE square (the extra pixel goes bottom/right)."""
    return (RESIZE - size[0]) // 2, (RESIZE - size[1]) // 2


class GloriaPreprocess:
    """``MedicalImage`` (or PIL image) -> ``[3, 224, 224]`` float tensor, as GLoRIA prepares its chest X-rays."""

    @property
    def target_size(self) -> int:
        """The side images are resized towards (the resized long side)."""
        return RESIZE

    def __call__(self, image: MedicalImage | Image.Image) -> torch.Tensor:
        picture = image if isinstance(image, Image.Image) else to_model_picture(image)
        grey = np.asarray(picture if picture.mode == "L" else picture.convert("L"))
        size = resized_size(*grey.shape)
        square = np.zeros((RESIZE, RESIZE), dtype=np.uint8)
        top, left = _padding(size)
        square[top : top + size[0], left : left + size[1]] = area_resize(grey, size)
        start = CROP_START
        crop = torch.from_numpy(square[start : start + CROP, start : start + CROP].astype(np.float32))
        return ((crop / 255.0 - 0.5) / 0.5).expand(3, CROP, CROP).contiguous()

    def __repr__(self) -> str:
        return f"GloriaPreprocess(resize={RESIZE} area, pad square, crop={CROP}, mean=0.5, std=0.5)"

    def geometry(self, source_size: tuple[int, int]) -> Geometry:
        """Source → long side 256 → padded square → centre crop 224."""
        size = resized_size(*source_size)
        top, left = _padding(size)
        start = CROP_START
        return Geometry(tuple(source_size), size, (start - top, start - left), (CROP, CROP))  # type: ignore[arg-type]
