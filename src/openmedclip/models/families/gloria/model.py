"""The GLoRIA dual encoder, with the module names of its published checkpoint (``img_encoder.*``,
``text_encoder.model.*``).

Image: the input is upsampled (bilinear, corners aligned) to ``image_size``; a ResNet trunk with bottleneck blocks
(torchvision's ResNet-50 layout, no ``fc``) gives the global feature (average pool of layer4 → ``global_embedder``)
and the local features (layer3 map → 1×1 conv ``local_embedder``; 19 × 19 at 299 px).

Text: a BERT (with its unused pooler, which the checkpoint holds). The last ``last_layers`` hidden states are taken;
word pieces are summed back into words (a piece starting with ``##`` joins the word before it; ``[CLS]`` is a word,
``[SEP]`` ends the caption and what follows is dropped), giving one vector per word position, zero after the
caption. Word features are the sum over the layers; the sentence feature is the mean over all positions (padding
included, so only a scale) summed over the layers. There is no projection: the joint dimension is BERT's hidden size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import Bottleneck, conv1x1  # type: ignore[import-untyped]

from openmedclip.models.families.gloria.config import GloriaConfig

if TYPE_CHECKING:
    from transformers import BertConfig


class ResNetTrunk(nn.Module):
    """torchvision's ResNet with bottleneck blocks and configurable stage widths, without pooling and ``fc``
    (``layers=(3, 4, 6, 3)``, ``planes=(64, 128, 256, 512)`` is ResNet-50)."""

    def __init__(self, layers: Sequence[int], planes: Sequence[int]):
        super().__init__()
        stem = planes[0]
        self.conv1 = nn.Conv2d(3, stem, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        inplanes = stem
        stages = []
        for index, (blocks, width) in enumerate(zip(layers, planes)):
            stride = 1 if index == 0 else 2
            out = width * Bottleneck.expansion
            downsample = None
            if stride != 1 or inplanes != out:
                downsample = nn.Sequential(conv1x1(inplanes, out, stride), nn.BatchNorm2d(out))
            stage = [Bottleneck(inplanes, width, stride, downsample)]
            stage += [Bottleneck(out, width) for _ in range(blocks - 1)]
            stages.append(nn.Sequential(*stage))
            inplanes = out
        self.layer1, self.layer2, self.layer3, self.layer4 = stages

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, C4]`` pooled layer4 features and the ``[B, C3, h, w]`` layer3 map."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(pixels))))
        local = self.layer3(self.layer2(self.layer1(x)))
        return self.layer4(local).mean(dim=(2, 3)), local


class ImageEncoder(nn.Module):
    """Trunk plus the global (Linear) and local (1×1 conv, no bias) embedders into the joint space."""

    def __init__(self, config: GloriaConfig, embed_dim: int):
        super().__init__()
        self.image_size = config.image_size
        self.model = ResNetTrunk(config.resnet_layers, config.resnet_planes)
        self.global_embedder = nn.Linear(config.resnet_planes[3] * Bottleneck.expansion, embed_dim)
        self.local_embedder = nn.Conv2d(
            config.resnet_planes[2] * Bottleneck.expansion, embed_dim, kernel_size=1, bias=False
        )

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, D]`` global and ``[B, D, h, w]`` local features."""
        size = (self.image_size, self.image_size)
        pooled, local = self.model(F.interpolate(pixels, size=size, mode="bilinear", align_corners=True))
        return self.global_embedder(pooled), self.local_embedder(local)


class TextEncoder(nn.Module):
    """BERT, last hidden layers, word pieces summed into words."""

    continuation: torch.Tensor
    """``[vocab]`` bool: which token ids continue the word before them (``##`` pieces)."""

    def __init__(self, config: GloriaConfig, bert_config: BertConfig, vocab: Sequence[str]):
        from transformers import BertModel

        super().__init__()
        self.model = BertModel(bert_config, add_pooling_layer=True)
        size = int(self.model.config.vocab_size)
        continuation = torch.zeros(size, dtype=torch.bool)
        continuation[: len(vocab)] = torch.tensor([piece.startswith("##") for piece in vocab[:size]])
        self.register_buffer("continuation", continuation, persistent=False)
        self.sep_id = vocab.index("[SEP]")
        self.pad_id = vocab.index("[PAD]")
        self.last_layers = config.last_layers

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``[B, L, D]`` word features (``[CLS]`` first, then the words, ``[SEP]``, zeros), ``[B, D]`` sentence
        features and ``[B]`` word counts (words between ``[CLS]`` and ``[SEP]``)."""
        output = self.model(input_ids=tokens, attention_mask=(tokens != self.pad_id).long(), output_hidden_states=True)
        hidden = torch.stack(output.hidden_states[-self.last_layers :], dim=1)  # [B, layers, L, D]
        batch, layers, length, dim = hidden.shape
        is_sep = tokens == self.sep_id
        seps_so_far = is_sep.long().cumsum(dim=1)
        before = seps_so_far == 0
        first_sep = is_sep & (seps_so_far == 1)
        starts = ~self.continuation[tokens]
        starts[:, 0] = True
        starts &= before
        words_before = starts.sum(dim=1, keepdim=True)
        scratch = torch.full_like(tokens, length)
        index = torch.where(before, starts.long().cumsum(dim=1) - 1, torch.where(first_sep, words_before, scratch))
        words = hidden.new_zeros(batch, layers, length + 1, dim)
        words.scatter_add_(2, index[:, None, :, None].expand(batch, layers, length, dim), hidden)
        words = words[:, :, :length]
        return words.sum(dim=1), words.mean(dim=2).sum(dim=1), (words_before[:, 0] - 1).clamp(min=0)


class GloriaModel(nn.Module):
    """The model protocol over GLoRIA's encoders: global features for ``encode_image`` / ``encode_text``; local
    image features and word features for GLoRIA's local similarity."""

    def __init__(self, config: GloriaConfig, bert_config: BertConfig, vocab: Sequence[str]):
        super().__init__()
        self.text_encoder = TextEncoder(config, bert_config, vocab)
        embed_dim = int(self.text_encoder.model.config.hidden_size)
        self.img_encoder = ImageEncoder(config, embed_dim)
        self.temperature = config.temperature
        self.register_buffer("logit_scale", torch.tensor(math.log(config.temperature)), persistent=False)

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        """``[B, D]`` global image features (not normalised)."""
        return self.img_encoder(pixels)[0]

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """``[B, D]`` sentence features (not normalised)."""
        return self.text_encoder(tokens)[1]

    def local_image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """``[B, D, h, w]`` local image features."""
        return self.img_encoder(pixels)[1]

    def word_features(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, L, D]`` word features and ``[B]`` word counts."""
        words, _, counts = self.text_encoder(tokens)
        return words, counts
