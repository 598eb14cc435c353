"""open_clip's ``CustomTextCLIP`` with a timm ResNet image tower and a BERT text tower, rebuilt in plain torch.

Same module tree and state-dict keys as the model open_clip builds from the same config (``visual.trunk``,
``visual.head.proj``, ``text.transformer``, ``text.proj``, ``logit_scale``), so the same checkpoint loads into
either; the forward passes match open_clip's (tested against it).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from openmedclip.models.families.open_clip.native.bert import BertEncoder, BertShape
from openmedclip.models.families.open_clip.native.layers import Linear
from openmedclip.models.families.open_clip.native.resnet import ResNet, ResNetLayout

POOLERS = ("mean_pooler", "cls_last_hidden_state_pooler")
"""open_clip text poolers reproduced here: the masked mean, and the CLS token's last hidden state."""


class ResNetTower(nn.Module):
    """open_clip's ``TimmModel`` for a ResNet with average pooling and a linear projection."""

    def __init__(
        self,
        layout: ResNetLayout,
        embed_dim: int,
        image_size: int | tuple[int, int],
        proj_bias: bool,
        output_stride: int = 32,
    ):
        super().__init__()
        self.trunk = ResNet(layout, output_stride)
        self.head = nn.Sequential()
        self.head.add_module("drop", nn.Dropout(0.0))
        self.head.add_module("proj", Linear(self.trunk.num_features, embed_dim, bias=proj_bias))
        self.image_size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        self.preprocess_cfg: dict[str, Any] = {}
        """The complete preprocess config (open_clip keeps it on the image tower too)."""

    @property
    def projection(self) -> Linear:
        return cast(Linear, self.head.proj)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(pixels))


class BertTower(nn.Module):
    """open_clip's ``HFTextEncoder`` for a BERT with a mean or CLS pooler and a linear projection."""

    def __init__(self, shape: BertShape, embed_dim: int, pooler: str, config_file: Path):
        super().__init__()
        self.config_file = config_file
        """The tower's ``config.json`` (copied when the model is saved)."""
        self.transformer = BertEncoder(shape)
        self.proj = Linear(shape.hidden_size, embed_dim, bias=False)
        self.pooler_type = pooler
        self.pad_token_id = shape.pad_token_id

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        mask = (tokens != self.pad_token_id).long()
        hidden = self.transformer(tokens, mask)
        if self.pooler_type == "mean_pooler":
            pooled = (hidden * mask.unsqueeze(-1)).sum(dim=1) / mask.sum(-1, keepdim=True)
        else:
            pooled = hidden[:, 0, :]
        return self.proj(pooled)


class NativeClip(nn.Module):
    """A dual encoder: ``encode_image``, ``encode_text``, ``logit_scale`` (and ``logit_bias`` when configured)."""

    def __init__(self, visual: ResNetTower, text: BertTower, init_logit_bias: float | None):
        super().__init__()
        self.visual = visual
        self.text = text
        self.logit_scale = nn.Parameter(torch.ones([]) * math.log(1 / 0.07))
        self.logit_bias = nn.Parameter(torch.ones([]) * init_logit_bias) if init_logit_bias is not None else None

    def encode_image(self, pixels: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        features = self.visual(pixels)
        return F.normalize(features, dim=-1) if normalize else features

    def encode_text(self, tokens: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        features = self.text(tokens)
        return F.normalize(features, dim=-1) if normalize else features



def patch_features(model: NativeClip, pixels: torch.Tensor) -> torch.Tensor:
    """``[B, rows, columns, D]``: the last feature map through the image projection (see the open_clip family)."""
    visual = model.visual
    return visual.projection(visual.trunk.forward_features(pixels).permute(0, 2, 3, 1))
