"""open_clip's inference transform for the squash and shortest-side resize modes, on Pillow and torch only.

The same steps as open_clip's ``image_transform_v2`` (torchvision's resize and centre crop on a PIL image, the
conversion to RGB after them, ``ToTensor``, ``Normalize``) with the same arithmetic, so the tensors are equal, bit
for bit (tested); importing torchvision costs seconds at start-up, this costs nothing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image

from openmedclip.io import MedicalImage, to_model_picture
from openmedclip.io.convert import grey_if_uniform
from openmedclip.models.families.open_clip.geometry import (
    TransformGeometry,
    crop_offset,
    resized_size,
    size_pair,
)

RESAMPLING = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}
MODES = ("squash", "shortest")


def supports(cfg: dict[str, Any]) -> bool:
    """Whether the complete preprocess config ``cfg`` is one this transform reproduces."""
    rows, columns = size_pair(cfg.get("size", 224))
    mode = cfg.get("resize_mode") or "shortest"
    return (
        mode in MODES
        and (mode == "squash" or rows == columns)
        and cfg.get("interpolation", "bicubic") in RESAMPLING
        and cfg.get("mode", "RGB") == "RGB"
        and len(cfg.get("mean", ())) == 3
        and len(cfg.get("std", ())) == 3
    )


class NativePreprocess(TransformGeometry):
    """``MedicalImage`` (or a PIL image) -> ``[3, H, W]`` float32, as open_clip's transform for ``cfg`` gives."""

    grey_input = True

    def __init__(self, cfg: dict[str, Any]):
        self.cfg = cfg
        self.resample = RESAMPLING[cfg.get("interpolation", "bicubic")]
        self.mean = torch.tensor(cfg["mean"], dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(cfg["std"], dtype=torch.float32).view(3, 1, 1)

    def __call__(self, image: MedicalImage | Image.Image) -> torch.Tensor:
        picture = image if isinstance(image, Image.Image) else to_model_picture(image)
        picture = self._resize_and_crop(grey_if_uniform(picture))
        if picture.mode != "RGB":
            picture = picture.convert("RGB")
        pixels = torch.from_numpy(np.array(picture, dtype=np.uint8)).permute(2, 0, 1).contiguous()
        return pixels.to(torch.float32).div(255).sub_(self.mean).div_(self.std)

    def _resize_and_crop(self, picture: Image.Image) -> Image.Image:
        target = size_pair(self.cfg.get("size", 224))
        rows, columns = resized_size((picture.height, picture.width), target, self.cfg.get("resize_mode") or "shortest")
        if (rows, columns) != (picture.height, picture.width):
            picture = picture.resize((columns, rows), self.resample)
        if (rows, columns) == target:
            return picture
        top, left = crop_offset(rows, target[0]), crop_offset(columns, target[1])
        return picture.crop((left, top, left + target[1], top + target[0]))

    def __repr__(self) -> str:
        return f"NativePreprocess({self.cfg})"
