"""The PMC-CLIP dual encoder: a ModifiedResNet with attention pooling and a BERT text tower.

Key names follow PMC-CLIP's own model (``visual.*``, ``text_encoder.*``, ``text_projection``, ``logit_scale``), so
its checkpoints load strictly once their unused parts (the MLM fusion head) are set aside.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from open_clip.modified_resnet import ModifiedResNet
from torch import nn
from transformers import BertConfig, BertModel

from openmedclip.models.families.pmc_clip.config import PmcClipConfig


class PmcClipModel(nn.Module):
    """``encode_image``: ModifiedResNet-50 → attention pool (32 heads) → ``embed_dim``.
    ``encode_text``: BERT → last hidden state at the [CLS] position → ``@ text_projection`` (no bias)."""

    def __init__(self, config: PmcClipConfig, bert_config: BertConfig):
        super().__init__()
        self.visual = ModifiedResNet(
            layers=list(config.vision_layers),
            output_dim=config.embed_dim,
            heads=config.vision_heads,
            image_size=config.image_size,
            width=config.vision_width,
        )
        self.text_encoder = BertModel(bert_config, add_pooling_layer=True)
        width = bert_config.hidden_size
        self.text_projection = nn.Parameter(torch.randn(width, config.embed_dim) * width**-0.5)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.cls_token_id = config.cls_token_id

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        """``[B, 3, H, W]`` → ``[B, embed_dim]`` (not normalised)."""
        return self.visual(pixels)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """``[B, L]`` token ids → ``[B, embed_dim]`` (not normalised).

        As in PMC-CLIP's own code, the BERT is called without an attention mask: [PAD] positions are attended to,
        and the model was trained that way. The feature is the last hidden state at the first [CLS] token.
        """
        hidden = self.text_encoder(input_ids=tokens).last_hidden_state
        position = (tokens == self.cls_token_id).int().argmax(dim=1)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), position] @ self.text_projection

    def feature_map(self, pixels: torch.Tensor) -> torch.Tensor:
        """The last ResNet stage's output, ``[B, 32 * width, H / 32, W / 32]``."""
        visual: Any = self.visual
        x = visual.stem(pixels)
        for stage in (visual.layer1, visual.layer2, visual.layer3, visual.layer4):
            x = stage(x)
        return x

    def patch_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """``[B, rows, columns, embed_dim]``: each location's attention-pool value, projected to the joint space.

        These are the vectors the pool's query attends over (the location plus its positional embedding, through
        the value and output projections); per head, the pooled feature is their attention-weighted mean together
        with the mean-token's value.
        """
        pool: Any = self.visual.attnpool
        features = self.feature_map(pixels)
        batch, _, rows, columns = features.shape
        tokens = features.flatten(2).transpose(1, 2) + pool.positional_embedding[1:].to(features.dtype)
        return pool.c_proj(pool.v_proj(tokens)).reshape(batch, rows, columns, -1)
