"""The BioViL dual encoder: hi-ml's image model and CXR-BERT, compared by cosine similarity."""

from __future__ import annotations

import math

import torch
from torch import nn

from openmedclip.models.families.biovil.config import BiovilConfig
from openmedclip.models.families.biovil.image import ImageTower
from openmedclip.models.families.biovil.text import TextTower


class BiovilModel(nn.Module):
    """``image.*`` is hi-ml's ``ImageModel``, ``text.*`` CXR-BERT; both map into one joint space.

    BioViL scores zero-shot with plain cosine similarity (its family's ``zero_shot_scale`` is 1). ``logit_scale``
    is the temperature fine-tuning learns: not in the published files, so it starts at CLIP's ``log(1 / 0.07)``.
    """

    logit_scale: torch.Tensor

    def __init__(self, config: BiovilConfig):
        super().__init__()
        self.image = ImageTower(config.image)
        self.text = TextTower(config.text)
        self.logit_scale = torch.nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        """Global image embeddings ``[B, D]``: the mean of the projected patch embeddings (not normalised)."""
        return self.image(pixels)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """Projected [CLS] embeddings ``[B, D]`` (not normalised)."""
        return self.text(tokens)

    def patch_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """Projected patch embeddings ``[B, rows, columns, D]``, what BioViL's similarity maps use."""
        return self.image.patches(pixels).permute(0, 2, 3, 1)
