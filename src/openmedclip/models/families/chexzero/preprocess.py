"""CheXzero's chest X-ray preprocessing: long side to 320 (Lanczos), centred on a black 320 × 320 grey canvas, three
equal channels on the 0–255 scale, normalised with CheXzero's mean and std, then resized to the model's input size
(224 for the published ViT-B/32; bicubic)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from openmedclip.io import MedicalImage, to_model_picture
from openmedclip.io.convert import grey_if_uniform
from openmedclip.models.family import Geometry

CANVAS = 320
SIZE = 224
MEAN, STD = 101.48761, 83.43944
"""CheXzero's normalisation, on the 0–255 scale."""


class ChexzeroPreprocess:
    """``MedicalImage`` (or PIL image) -> ``[3, size, size]``, as CheXzero prepares its CXRs."""

    def __init__(self, size: int = SIZE):
        self.size = size

    @property
    def target_size(self) -> int:
        """The side images are resized towards (the canvas side)."""
        return CANVAS

    def __call__(self, image: MedicalImage | Image.Image) -> torch.Tensor:
        if isinstance(image, Image.Image):
            picture = image.convert("RGB")
        else:  # grey pictures are resized as one channel: the canvas's conversion to grey gives the same values
            picture = grey_if_uniform(to_model_picture(image))
        rows, columns = picture.height, picture.width
        scale = CANVAS / max(rows, columns)
        resized = picture.resize(
            (max(1, round(columns * scale)), max(1, round(rows * scale))), Image.Resampling.LANCZOS
        )
        canvas = Image.new("L", (CANVAS, CANVAS))
        canvas.paste(resized, ((CANVAS - resized.width) // 2, (CANVAS - resized.height) // 2))
        grey = torch.from_numpy(np.asarray(canvas, dtype=np.float32))
        pixels = ((grey - MEAN) / STD).expand(3, CANVAS, CANVAS)
        size = (self.size, self.size)
        return F.interpolate(pixels[None], size=size, mode="bicubic", align_corners=False, antialias=True)[0]

    def __repr__(self) -> str:
        return f"ChexzeroPreprocess(canvas={CANVAS}, size={self.size}, mean={MEAN}, std={STD})"

    def geometry(self, source_size: tuple[int, int]) -> Geometry:
        """The canvas mapping expressed at model resolution (sizes rounded to whole model pixels)."""
        rows, columns = source_size
        scale = CANVAS / max(rows, columns)
        canvas_rows, canvas_columns = max(1, round(rows * scale)), max(1, round(columns * scale))
        to_model = self.size / CANVAS
        resized = (round(canvas_rows * to_model), round(canvas_columns * to_model))
        offset = (-round((CANVAS - canvas_rows) // 2 * to_model), -round((CANVAS - canvas_columns) // 2 * to_model))
        return Geometry((rows, columns), resized, offset, (self.size, self.size))
