"""Per-location image features of open_clip image towers, projected into the joint space (for heat maps)."""

from __future__ import annotations

import math

import torch
from open_clip.timm_model import TimmModel
from open_clip.transformer import VisionTransformer

from openmedclip.errors import ModelLoadError


def patch_features(model: torch.nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    """``[B, rows, columns, D]`` features: ViT patch tokens, or a timm tower's last feature map, through the
    same projection as the pooled feature (so they compare with text features)."""
    visual = model.visual
    if isinstance(visual, VisionTransformer):
        return _vit_patches(visual, pixels)
    if isinstance(visual, TimmModel) and (head := _linear_head(visual)) is not None:
        features = visual.trunk.forward_features(pixels)
        projected = head(features.permute(0, 2, 3, 1))
        return projected
    raise ModelLoadError(type(visual).__name__, "patch features are available for ViT and timm CNN towers with a "
                         "linear projection")


def _vit_patches(visual: VisionTransformer, pixels: torch.Tensor) -> torch.Tensor:
    previous = visual.output_tokens
    visual.output_tokens = True
    try:
        _, tokens = visual(pixels)
    finally:
        visual.output_tokens = previous
    if visual.proj is not None:
        tokens = tokens @ visual.proj
    side = math.isqrt(tokens.shape[1])
    rows, columns = visual.grid_size if hasattr(visual, "grid_size") else (side, side)
    return tokens.reshape(tokens.shape[0], rows, columns, tokens.shape[-1])


def _linear_head(visual: TimmModel) -> torch.nn.Module | None:
    """The projection of a timm tower with average pooling and a linear projection head, else None."""
    head = visual.head
    names = {name for name, _ in head.named_children()}
    if "proj" in names and names <= {"drop", "proj"} and isinstance(head.proj, torch.nn.Linear):
        return head.proj
    return None
