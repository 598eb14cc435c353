"""MedCLIP's image preprocessing (its ``MedCLIPFeatureExtractor``): the image pasted, centred, on a black grey
square canvas at least the model's size on a side, resized to the model's size (bicubic), scaled to 0–1 and
normalised with one grey mean and std. Smaller images are padded, not enlarged. The grey image is repeated into
three channels, as MedCLIP's image towers do."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from openmedclip.io import MedicalImage, to_model_picture
from openmedclip.models.family import Geometry

MEAN = 0.5862785803043838
STD = 0.27950088968644304


class MedclipPreprocess:
    """``MedicalImage`` (or PIL image) -> ``[3, size, size]`` float tensor."""

    def __init__(self, size: int = 224):
        self.size = size

    @property
    def target_size(self) -> int:
        """The side images are resized towards (the model's input side)."""
        return self.size

    def __call__(self, image: MedicalImage | Image.Image) -> torch.Tensor:
        picture = image if isinstance(image, Image.Image) else to_model_picture(image)
        side = self._canvas_side(picture.height, picture.width)
        canvas = Image.new("L", (side, side))
        canvas.paste(picture, ((side - picture.width) // 2, (side - picture.height) // 2))  # converts to grey
        resized = canvas.resize((self.size, self.size), Image.Resampling.BICUBIC)
        grey = np.asarray(resized, dtype=np.float32) * np.float32(1 / 255.0)
        normalised = (grey - np.float32(MEAN)) / np.float32(STD)
        return torch.from_numpy(normalised).expand(3, self.size, self.size)

    def _canvas_side(self, rows: int, columns: int) -> int:
        return max(self.size, rows, columns)

    def geometry(self, source_size: tuple[int, int]) -> Geometry:
        """The canvas mapping at model resolution (sizes and offsets rounded to whole model pixels)."""
        rows, columns = source_size
        side = self._canvas_side(rows, columns)
        scale = self.size / side
        resized = (max(1, round(rows * scale)), max(1, round(columns * scale)))
        offset = (-round((side - rows) // 2 * scale), -round((side - columns) // 2 * scale))
        return Geometry((rows, columns), resized, offset, (self.size, self.size))

    def __repr__(self) -> str:
        return f"MedclipPreprocess(size={self.size}, mean={MEAN}, std={STD})"
