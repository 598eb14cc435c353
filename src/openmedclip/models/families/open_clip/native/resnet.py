"""timm's ResNet variants in plain torch, with timm's module names, for inference without importing timm.

Only the layout timm builds for the names in :data:`RESNETS` (plain, ``d`` and ``t`` stems, average-pool
downsampling) is covered; the forward pass uses the same operations in the same order, so features equal timm's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from openmedclip.models.families.open_clip.native.layers import Conv2d


@dataclass(frozen=True)
class ResNetLayout:
    """What a timm ResNet name builds: block kind, blocks per stage, stem and downsampling."""

    bottleneck: bool
    layers: tuple[int, int, int, int]
    stem_width: int = 64
    stem_type: str = ""
    """'' (one 7×7 conv), 'deep' (three 3×3 convs) or 'deep_tiered' (three 3×3 convs, narrower first)."""
    avg_down: bool = False


RESNETS: dict[str, ResNetLayout] = {
    "resnet10t": ResNetLayout(False, (1, 1, 1, 1), 32, "deep_tiered", True),
    "resnet14t": ResNetLayout(True, (1, 1, 1, 1), 32, "deep_tiered", True),
    "resnet18": ResNetLayout(False, (2, 2, 2, 2)),
    "resnet18d": ResNetLayout(False, (2, 2, 2, 2), 32, "deep", True),
    "resnet26t": ResNetLayout(True, (2, 2, 2, 2), 32, "deep_tiered", True),
    "resnet34": ResNetLayout(False, (3, 4, 6, 3)),
    "resnet34d": ResNetLayout(False, (3, 4, 6, 3), 32, "deep", True),
    "resnet50": ResNetLayout(True, (3, 4, 6, 3)),
    "resnet50d": ResNetLayout(True, (3, 4, 6, 3), 32, "deep", True),
}


def _conv3x3(inputs: int, outputs: int, stride: int = 1, dilation: int = 1) -> Conv2d:
    return Conv2d(inputs, outputs, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)


class SamePadAvgPool(nn.Module):
    """timm's ``AvgPool2dSame(2, 1)`` of a dilated stage's shortcut: one zero row and column padded after the
    input (counted in the mean), then a 2 × 2 mean at stride 1."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(F.pad(x, (0, 1, 0, 1)), 2, 1, ceil_mode=True, count_include_pad=False)


def _downsample(inputs: int, outputs: int, stride: int, dilation: int, avg_down: bool) -> nn.Sequential | None:
    if stride == 1 and inputs == outputs:
        return None
    if not avg_down:
        return nn.Sequential(Conv2d(inputs, outputs, 1, stride=stride, bias=False), nn.BatchNorm2d(outputs))
    pool: nn.Module = nn.Identity()
    if dilation > 1:
        pool = SamePadAvgPool()
    elif stride != 1:
        pool = nn.AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False)
    return nn.Sequential(pool, Conv2d(inputs, outputs, 1, bias=False), nn.BatchNorm2d(outputs))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(
        self, inputs: int, planes: int, stride: int, downsample: nn.Module | None, first_dilation: int, dilation: int
    ):
        super().__init__()
        self.conv1, self.bn1 = _conv3x3(inputs, planes, stride, first_dilation), nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = _conv3x3(planes, planes, dilation=dilation), nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        x = F.relu(self.bn1(self.conv1(x)), inplace=True)
        x = self.bn2(self.conv2(x))
        return F.relu(x + shortcut, inplace=True)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(
        self, inputs: int, planes: int, stride: int, downsample: nn.Module | None, first_dilation: int, dilation: int
    ):
        super().__init__()
        outputs = planes * self.expansion
        self.conv1, self.bn1 = Conv2d(inputs, planes, 1, bias=False), nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = _conv3x3(planes, planes, stride, first_dilation), nn.BatchNorm2d(planes)
        self.conv3, self.bn3 = Conv2d(planes, outputs, 1, bias=False), nn.BatchNorm2d(outputs)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        x = F.relu(self.bn1(self.conv1(x)), inplace=True)
        x = F.relu(self.bn2(self.conv2(x)), inplace=True)
        x = self.bn3(self.conv3(x))
        return F.relu(x + shortcut, inplace=True)


def _stem(layout: ResNetLayout) -> nn.Module:
    if not layout.stem_type:
        return Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
    width = layout.stem_width
    first, second = (3 * (width // 4), width) if "tiered" in layout.stem_type else (width, width)
    return nn.Sequential(
        _conv3x3(3, first, 2), nn.BatchNorm2d(first), nn.ReLU(inplace=True),
        _conv3x3(first, second), nn.BatchNorm2d(second), nn.ReLU(inplace=True),
        _conv3x3(second, 64),
    )


class ResNet(nn.Module):
    """A timm ResNet without its classifier: ``[B, 3, H, W]`` -> pooled ``[B, C]``; ``forward_features`` gives the
    last feature map. ``output_stride`` 16 or 8 dilates the last stages instead of striding them, as timm does."""

    def __init__(self, layout: ResNetLayout, output_stride: int = 32):
        super().__init__()
        self.conv1 = _stem(layout)
        self.bn1 = nn.BatchNorm2d(64)
        block = Bottleneck if layout.bottleneck else BasicBlock
        inputs, net_stride, dilation = 64, 4, 1
        for index, (count, planes) in enumerate(zip(layout.layers, (64, 128, 256, 512))):
            stride, first_dilation = (1 if index == 0 else 2), dilation
            if net_stride >= output_stride:
                dilation, stride = dilation * stride, 1
            else:
                net_stride *= stride
            outputs = planes * block.expansion
            shortcut = _downsample(inputs, outputs, stride, dilation, layout.avg_down)
            blocks = [block(inputs, planes, stride, shortcut, first_dilation, dilation)]
            blocks += [block(outputs, planes, 1, None, dilation, dilation) for _ in range(count - 1)]
            self.add_module(f"layer{index + 1}", nn.Sequential(*blocks))
            inputs = outputs
        self.num_features = inputs

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)), inplace=True)
        x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)
        for index in range(1, 5):
            x = getattr(self, f"layer{index}")(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(self.forward_features(x), 1).flatten(1)
