"""BioViL's chest X-ray preprocessing: greyscale, short side to 512 (bilinear), centre crop (480 for BioViL, 448
for BioViL-T), values 0–1 in three equal channels, no mean/std normalisation.

The image reaches 8 bits through :func:`openmedclip.io.to_model_picture` (windows and DICOM VOI applied there;
8-bit images kept as they are). Upstream's own loader instead min-max stretches every image to 0–255, which
changes nothing for images that already span 0–255.
"""

from __future__ import annotations

import torch
from PIL import Image
from torchvision.transforms import InterpolationMode  # type: ignore[import-untyped]
from torchvision.transforms import functional as TF

from openmedclip.io import MedicalImage, to_model_picture
from openmedclip.models.family import Geometry


class BiovilPreprocess:
    """``MedicalImage`` (or PIL image) -> ``[3, crop, crop]`` in 0–1."""

    def __init__(self, resize: int, crop: int):
        if crop > resize:
            raise ValueError(f"crop {crop} is larger than the resized short side {resize}")
        self.resize = resize
        self.crop = crop

    @property
    def target_size(self) -> int:
        """The side images are resized towards (the resized short side)."""
        return self.resize

    def __call__(self, image: MedicalImage | Image.Image) -> torch.Tensor:
        picture = image if isinstance(image, Image.Image) else to_model_picture(image)
        grey = picture if picture.mode == "L" else picture.convert("L")
        grey = TF.resize(grey, self.resize, interpolation=InterpolationMode.BILINEAR)
        grey = TF.center_crop(grey, [self.crop, self.crop])
        return TF.to_tensor(grey).expand(3, -1, -1).contiguous()

    def __repr__(self) -> str:
        return f"BiovilPreprocess(resize={self.resize}, bilinear, crop={self.crop}, grey in 3 channels, 0-1)"

    def geometry(self, source_size: tuple[int, int]) -> Geometry:
        """torchvision's short-side resize (long side truncated) and centred crop."""
        rows, columns = source_size
        if rows <= columns:
            resized = (self.resize, int(self.resize * columns / rows))
        else:
            resized = (int(self.resize * rows / columns), self.resize)
        offset = (round((resized[0] - self.crop) / 2.0), round((resized[1] - self.crop) / 2.0))
        return Geometry((rows, columns), resized, offset, (self.crop, self.crop))
