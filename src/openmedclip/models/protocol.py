"""The model protocol: what every loaded model offers, whatever its family."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch


@runtime_checkable
class ClipModel(Protocol):
    """A dual encoder. ``encode_image`` maps ``[B, C, H, W]`` pixels and ``encode_text`` ``[B, L]`` token ids to
    ``[B, D]`` features in one joint space (not necessarily normalised); ``logit_scale`` is the log of the
    temperature multiplier; ``logit_bias`` (SigLIP-style models) is None or absent otherwise."""

    logit_scale: torch.Tensor

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor: ...

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor: ...
