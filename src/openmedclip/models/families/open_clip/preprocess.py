"""open_clip's inference transform behind the family preprocess interface: ``MedicalImage -> [3, H, W]``.

The image goes through :func:`openmedclip.io.to_model_input` (the one conversion to 8-bit RGB, windows applied
there) and then open_clip's own transform (resize, crop or pad, normalise), so results equal open_clip's own
pipeline on the same RGB image. Grey images skip the conversion to RGB when the transform only resizes, crops or
pads before its own ``convert("RGB")``, and so do RGB pictures whose three channels are equal
(:func:`~openmedclip.io.convert.grey_if_uniform`): Pillow resamples each channel alike, so the tensor is the same,
bit for bit, for a third of the resampling work. :meth:`OpenClipPreprocess.geometry` reproduces the transform's
resize and crop arithmetic (:class:`TransformGeometry`), so model pixels can be mapped back onto the source image.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from open_clip.transform import CenterCropOrPad, MaybeConvertMode, ResizeKeepRatio
from PIL import Image
from torchvision.transforms import CenterCrop, Compose, Resize  # type: ignore[import-untyped]

from openmedclip.io import MedicalImage, to_model_picture
from openmedclip.io.convert import grey_if_uniform
from openmedclip.models.families.open_clip.geometry import TransformGeometry

_GEOMETRIC = (Resize, CenterCrop, ResizeKeepRatio, CenterCropOrPad)


class OpenClipPreprocess(TransformGeometry):
    """Callable preprocess of an open_clip model; ``transform`` is open_clip's transform for ``cfg``."""

    def __init__(self, transform: Callable[[Image.Image], torch.Tensor], cfg: dict[str, Any]):
        self.transform = transform
        self.cfg = cfg
        self.grey_input = _converts_after_geometry(transform)

    def __call__(self, image: MedicalImage | Image.Image) -> torch.Tensor:
        """Pixels for the model; a PIL image is taken as the RGB picture it shows."""
        if isinstance(image, Image.Image):
            picture = image if image.mode in ("L", "RGB") else image.convert("RGB")
        else:
            picture = to_model_picture(image)
        if self.grey_input:
            return self.transform(grey_if_uniform(picture))
        return self.transform(picture if picture.mode == "RGB" else picture.convert("RGB"))

    def __repr__(self) -> str:
        return repr(self.transform)


def _converts_after_geometry(transform: Any) -> bool:
    """Whether ``transform`` is a Compose that only resizes, crops or pads before converting to RGB."""
    for step in getattr(transform, "transforms", ()) if isinstance(transform, Compose) else ():
        if isinstance(step, MaybeConvertMode):
            return step.mode == "RGB"
        if not isinstance(step, _GEOMETRIC) or not isinstance(getattr(step, "fill", 0), int):
            return False
    return False
