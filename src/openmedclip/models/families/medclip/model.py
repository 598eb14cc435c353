"""MedCLIP as an ``nn.Module`` with the model protocol, under the key names of the published ``pytorch_model.bin``.

Keys: ``vision_model.model.*`` (torchvision ResNet whose ``fc`` 2048 → 512 is the projection, or a transformers
``SwinModel``) with ``vision_model.projection_head`` for Swin, ``text_model.model.*`` (``BertModel``),
``text_model.projection_head`` and ``logit_scale``.
"""

from __future__ import annotations

import importlib
import math
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from openmedclip.models.families.medclip.config import MedclipConfig, TextPooling

if TYPE_CHECKING:
    from transformers import BertConfig


class ResNetTower(nn.Module):
    """torchvision's ResNet (Bottleneck blocks) with ``fc`` replaced by the bias-free projection."""

    def __init__(self, config: MedclipConfig):
        super().__init__()
        resnet = importlib.import_module("torchvision.models.resnet")  # torchvision ships no type information

        # With the default settings this is torchvision.models.resnet50(weights=None).
        layers, width = list(config.resnet_layers), config.resnet_width_per_group
        self.model = resnet.ResNet(resnet.Bottleneck, layers, width_per_group=width)
        self.model.fc = nn.Linear(self.model.fc.in_features, config.embed_dim, bias=False)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model(pixels)

    def patches(self, pixels: torch.Tensor) -> torch.Tensor:
        """The last stage's feature map through the projection at every location: ``[B, rows, columns, D]``."""
        m = self.model
        x = m.maxpool(m.relu(m.bn1(m.conv1(pixels))))
        x = m.layer4(m.layer3(m.layer2(m.layer1(x))))
        return m.fc(x.permute(0, 2, 3, 1))


class SwinTower(nn.Module):
    """transformers' ``SwinModel``; its pooled output through a bias-free projection."""

    def __init__(self, config: MedclipConfig):
        super().__init__()
        from transformers import SwinConfig, SwinModel

        self.model = SwinModel(SwinConfig(**dict(config.swin)))
        self.projection_head = nn.Linear(self.model.num_features, config.embed_dim, bias=False)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.projection_head(self.model(pixel_values=pixels).pooler_output)

    def patches(self, pixels: torch.Tensor) -> torch.Tensor:
        """The last stage's tokens (after the final layer norm) through the projection: ``[B, rows, columns, D]``."""
        tokens = self.model(pixel_values=pixels).last_hidden_state
        batch, count, width = tokens.shape
        rows = round(math.sqrt(count * pixels.shape[-2] / pixels.shape[-1]))  # the token grid keeps the aspect
        return self.projection_head(tokens.reshape(batch, rows, count // rows, width))


class TextTower(nn.Module):
    """``BertModel``; the mean of hidden states 1, 2 and last, averaged over the sequence, then projected."""

    def __init__(self, bert_config: BertConfig, config: MedclipConfig):
        super().__init__()
        from transformers import BertModel

        self.model = BertModel(bert_config)
        self.projection_head = nn.Linear(self.model.config.hidden_size, config.embed_dim, bias=False)
        self.pad_token_id = int(self.model.config.pad_token_id or 0)
        self.pooling: TextPooling = config.text_pooling

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        mask = tokens != self.pad_token_id
        longest = max(1, int(mask.sum(dim=1).max()))  # texts are padded on the right: what padding=True gives
        tokens, mask = tokens[:, :longest], mask[:, :longest]
        output = self.model(input_ids=tokens, attention_mask=mask.long(), output_hidden_states=True)
        states = output.hidden_states
        layers = torch.stack([states[1], states[2], states[-1]])  # [3, B, L, width]
        if self.pooling == "upstream":
            pooled = layers.mean(dim=2).mean(dim=0)
        else:
            weights = (mask / mask.sum(dim=1, keepdim=True)).to(layers.dtype)
            pooled = (layers * weights[None, :, :, None]).sum(dim=2).mean(dim=0)
        return self.projection_head(pooled)


class MedclipModel(nn.Module):
    """MedCLIP's dual encoder: ``encode_image`` takes 1 or 3 channels, ``encode_text`` token ids."""

    def __init__(self, config: MedclipConfig, bert_config: BertConfig):
        super().__init__()
        self.vision_model: ResNetTower | SwinTower = (
            ResNetTower(config) if config.vision == "resnet" else SwinTower(config)
        )
        self.text_model = TextTower(bert_config, config)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.vision_model(_three_channels(pixels))

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.text_model(tokens)

    def patch_features(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.vision_model.patches(_three_channels(pixels))


def _three_channels(pixels: torch.Tensor) -> torch.Tensor:
    return pixels.expand(-1, 3, -1, -1) if pixels.shape[1] == 1 else pixels


def bert_config(config: MedclipConfig, folder: Path | None, name: str) -> BertConfig:
    """The text tower's ``BertConfig``: ``config.text_config`` when given, else the tower's ``config.json``."""
    from transformers import BertConfig

    if config.text_config is not None:
        return BertConfig(**dict(config.text_config))
    from openmedclip.models.hf_local import text_config_dir

    return BertConfig.from_pretrained(str(text_config_dir(config.text_tower, folder, name)))


def build_model(config: MedclipConfig, folder: Path | None, name: str) -> MedclipModel:
    """A randomly initialised MedCLIP model (no file is read but the text tower's ``config.json``)."""
    return MedclipModel(config, bert_config(config, folder, name))
