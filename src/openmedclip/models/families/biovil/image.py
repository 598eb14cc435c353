"""BioViL's image tower: a torchvision ResNet to its layer4 map, a 1×1-conv projector into the joint space, and
the mean of the projected patches as the global embedding.

Module names follow hi-ml's ``ImageModel`` (``encoder.encoder.*``, ``projector.model.*``; BioViL-T adds
``encoder.backbone_to_vit``, ``encoder.missing_previous_emb`` and ``encoder.vit_pooler.*``), so its published
state dict loads with exactly its own keys.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import Bottleneck, ResNet  # type: ignore[import-untyped]

from openmedclip.models.families.biovil.config import ImageSettings

PRIOR_PATCHES = 2
"""BioViL-T's pooler tells the current (0) and the prior (1) image apart with one learned type embedding each."""


class Trunk(ResNet):
    """torchvision's ResNet (Bottleneck blocks, no dilation) whose forward stops at the layer4 feature map.

    The unused ImageNet ``fc`` head stays, as in the published checkpoints. ``width_divisor`` narrows every stage
    (tiny test models only).
    """

    def __init__(self, settings: ImageSettings):
        self.width_divisor = settings.width_divisor
        super().__init__(Bottleneck, list(settings.layers), num_classes=settings.num_classes)
        self.fc = nn.Linear(self.out_channels, settings.num_classes)

    @property
    def out_channels(self) -> int:
        return 512 * Bottleneck.expansion // self.width_divisor

    def _make_layer(
        self, block: type[Bottleneck], planes: int, blocks: int, stride: int = 1, dilate: bool = False
    ) -> nn.Sequential:
        return super()._make_layer(block, planes // self.width_divisor, blocks, stride, dilate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class Encoder(nn.Module):
    """BioViL: the trunk's layer4 map as it is."""

    def __init__(self, settings: ImageSettings):
        super().__init__()
        self.encoder = Trunk(settings)
        self.out_channels = self.encoder.out_channels

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.encoder(pixels)


class PoolerBlock(nn.Module):
    """The weights of one block of BioViL-T's prior-image ViT pooler (pre-norm attention without q/k/v bias, MLP)."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = nn.Module()
        for name in ("proj_q", "proj_k", "proj_v"):
            self.attn.add_module(name, nn.Linear(dim, dim, bias=False))
        self.attn.add_module("proj", nn.Linear(dim, dim))
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Module()
        self.mlp.add_module("fc1", nn.Linear(dim, dim))
        self.mlp.add_module("fc2", nn.Linear(dim, dim))


class PriorPooler(nn.Module):
    """The weights of BioViL-T's ViT pooler, which fuses the current image with a prior one.

    It only runs when a prior image is given; this model encodes single images (the model protocol has no prior
    input), so these weights are loaded and saved with the checkpoint but do not take part in encoding.
    """

    def __init__(self, dim: int, blocks: int):
        super().__init__()
        self.blocks = nn.ModuleList(PoolerBlock(dim) for _ in range(blocks))
        self.norm_post = nn.LayerNorm(dim, eps=1e-6)
        self.type_embed = nn.Parameter(torch.zeros(PRIOR_PATCHES, 1, dim))


class TemporalEncoder(nn.Module):
    """BioViL-T on a single image: the layer4 map through a 1×1 conv, concatenated with the learned "no prior
    image" embedding tiled over the grid."""

    def __init__(self, settings: ImageSettings):
        super().__init__()
        self.encoder = Trunk(settings)
        dim = settings.pooler_dim
        self.backbone_to_vit = nn.Conv2d(self.encoder.out_channels, dim, kernel_size=1, bias=False)
        self.vit_pooler = PriorPooler(dim, settings.pooler_blocks)
        self.missing_previous_emb = nn.Parameter(torch.zeros(1, dim, 1, 1))
        nn.init.trunc_normal_(self.missing_previous_emb, std=0.02)
        self.out_channels = 2 * dim

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        current = self.backbone_to_vit(self.encoder(pixels))
        batch, _, rows, columns = current.shape
        return torch.cat([current, self.missing_previous_emb.expand(batch, -1, rows, columns)], dim=1)


class Projector(nn.Module):
    """1×1 conv (no bias) → BatchNorm → ReLU → 1×1 conv: every grid cell into the joint space."""

    def __init__(self, in_channels: int, joint_dim: int):
        super().__init__()
        self.model = nn.Sequential(
            nn.Conv2d(in_channels, joint_dim, kernel_size=1, bias=False),
            nn.BatchNorm2d(joint_dim),
            nn.ReLU(inplace=True),
            nn.Conv2d(joint_dim, joint_dim, kernel_size=1),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.model(features)


class ImageTower(nn.Module):
    """Pixels ``[B, 3, H, W]`` -> projected patch embeddings ``[B, D, H/32, W/32]`` and their mean ``[B, D]``."""

    def __init__(self, settings: ImageSettings):
        super().__init__()
        self.encoder: Encoder | TemporalEncoder = (
            TemporalEncoder(settings) if settings.variant == "biovil-t" else Encoder(settings)
        )
        self.projector = Projector(self.encoder.out_channels, settings.joint_dim)

    def patches(self, pixels: torch.Tensor) -> torch.Tensor:
        """Projected patch embeddings, ``[B, D, rows, columns]``."""
        return self.projector(self.encoder(pixels))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.patches(pixels).mean(dim=(2, 3))
