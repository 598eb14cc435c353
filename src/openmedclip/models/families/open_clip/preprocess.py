"""open_clip's inference transform behind the family preprocess interface: ``MedicalImage -> [3, H, W]``.

The image goes through :func:`openmedclip.io.to_model_input` (the one conversion to 8-bit RGB, windows applied
there) and then open_clip's own transform (resize, crop or pad, normalise), so results equal open_clip's own
pipeline on the same RGB image. Grey images skip the conversion to RGB when the transform only resizes, crops or
pads before its own ``convert("RGB")``: Pillow resamples each channel alike, so the tensor is the same, bit for
bit, for a third of the resampling work. :meth:`OpenClipPreprocess.geometry` reproduces the transform's resize and crop
arithmetic, so model pixels can be mapped back onto the source image.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from open_clip.transform import CenterCropOrPad, MaybeConvertMode, ResizeKeepRatio
from PIL import Image
from torchvision.transforms import CenterCrop, Compose, Resize  # type: ignore[import-untyped]

from openmedclip.io import MedicalImage, to_model_input, to_model_picture
from openmedclip.models.family import Geometry

_GEOMETRIC = (Resize, CenterCrop, ResizeKeepRatio, CenterCropOrPad)


def _pair(size: Any) -> tuple[int, int]:
    if isinstance(size, (list, tuple)):
        return int(size[-2]), int(size[-1])
    return int(size), int(size)


class OpenClipPreprocess:
    """Callable preprocess of an open_clip model; ``transform`` is open_clip's transform for ``cfg``."""

    def __init__(self, transform: Callable[[Image.Image], torch.Tensor], cfg: dict[str, Any]):
        self.transform = transform
        self.cfg = cfg
        self.grey_input = _converts_after_geometry(transform)

    @property
    def target_size(self) -> int:
        """The side images are resized towards (the larger side of the model input)."""
        return max(_pair(self.cfg.get("size", 224)))

    def __call__(self, image: MedicalImage | Image.Image) -> torch.Tensor:
        """Pixels for the model; a PIL image is taken as the RGB picture it shows."""
        if isinstance(image, Image.Image):
            return self.transform(image if image.mode == "RGB" else image.convert("RGB"))
        if self.grey_input:
            return self.transform(to_model_picture(image))
        return self.transform(to_model_input(image))

    def __repr__(self) -> str:
        return repr(self.transform)

    def geometry(self, source_size: tuple[int, int]) -> Geometry:
        """Where the model's input window lies on a source of ``source_size`` (rows, columns)."""
        rows, columns = source_size
        target = _pair(self.cfg.get("size", 224))
        mode = self.cfg.get("resize_mode") or "shortest"
        if mode == "squash":
            resized = target
        elif mode == "shortest" and target[0] == target[1]:
            short, long = sorted((rows, columns))
            scaled_long = int(target[0] * long / short)
            resized = (target[0], scaled_long) if rows <= columns else (scaled_long, target[0])
        else:
            ratios = (rows / target[0], columns / target[1])
            ratio = max(ratios) if mode == "longest" else min(ratios)
            resized = (round(rows / ratio), round(columns / ratio))
        offset = tuple(_offset(size, want) for size, want in zip(resized, target))
        return Geometry((rows, columns), resized, offset, target)  # type: ignore[arg-type]


def _offset(size: int, want: int) -> int:
    """Top/left of a centred crop (torchvision's rounding), or minus the leading padding when too small."""
    if size >= want:
        return round((size - want) / 2.0)
    return -((want - size) // 2)


def _converts_after_geometry(transform: Any) -> bool:
    """Whether ``transform`` is a Compose that only resizes, crops or pads before converting to RGB."""
    for step in getattr(transform, "transforms", ()) if isinstance(transform, Compose) else ():
        if isinstance(step, MaybeConvertMode):
            return step.mode == "RGB"
        if not isinstance(step, _GEOMETRIC) or not isinstance(getattr(step, "fill", 0), int):
            return False
    return False
