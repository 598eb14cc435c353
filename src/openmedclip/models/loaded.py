"""The one object every task works with: a model plus how to feed it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass(frozen=True)
class ModelSpec:
    """Where a model came from and how it was built (for reports, caches and error messages)."""

    name: str
    """Registry name, architecture name or path the user gave."""
    architecture: str
    """open_clip architecture name (or adapter name for non-open_clip models)."""
    source: str
    """Resolved location of the weights ('random' when built without weights)."""
    format: str
    """One of 'open_clip-arch', 'open_clip-hub', 'checkpoint', 'builtin', ..."""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class LoadedModel:
    """A CLIP-style model ready for inference.

    ``model`` has ``encode_image(pixels)``, ``encode_text(tokens)`` and ``logit_scale``;
    ``preprocess`` maps an RGB ``PIL.Image`` to a ``[3, H, W]`` float tensor;
    ``tokenizer`` maps a list of strings to a ``[N, context_length]`` LongTensor.
    The model is in eval mode, on ``device``, with its floating weights in ``dtype``.
    """

    model: torch.nn.Module
    preprocess: Callable[[Any], torch.Tensor]
    tokenizer: Callable[[list[str]], torch.Tensor]
    context_length: int
    spec: ModelSpec
    device: torch.device
    dtype: torch.dtype

    @property
    def logit_scale(self) -> float:
        """The learned temperature as a multiplier (``exp`` of the stored log value)."""
        return float(self.model.logit_scale.detach().float().exp().item())
