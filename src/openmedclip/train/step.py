"""One optimizer step's backward pass over ``grad_accum`` micro-batches, with the loss of the whole batch.

Contrastive losses do not split over micro-batches: every pair is a negative for every other pair. Here,
gradient accumulation means *the same gradient as one batch of ``grad_accum * batch_size`` pairs*, with
activation memory of one micro-batch: all micro-batches are first encoded without gradients; then each is
encoded again with gradients, its features replace their cached copies, and the loss over the whole set is
back-propagated (only through that micro-batch). The cost is one extra forward pass per micro-batch. The
random state is replayed for the second pass so dropout draws the same masks, and the temperature/bias get
their gradient once (from the last micro-batch).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, cast

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

if TYPE_CHECKING:
    from openmedclip.models.protocol import ClipModel

Batch = tuple[torch.Tensor, torch.Tensor]
"""(pixels ``[B, 3, H, W]``, tokens ``[B, L]``) on the model's device."""


class DualEncoder(nn.Module):
    """Both towers behind one ``forward`` (what DDP wraps): L2-normalised features, logit scale and bias.

    ``text_encoder`` replaces ``model.encode_text`` (e.g. a family's frozen-text cache; see
    :meth:`openmedclip.models.ModelFamily.frozen_text_encoder`).
    """

    def __init__(self, model: nn.Module, text_encoder: Callable[[torch.Tensor], torch.Tensor] | None = None):
        super().__init__()
        self.model = model
        self.text_encoder = text_encoder

    @property
    def _clip(self) -> ClipModel:
        """``model`` typed as the :class:`~openmedclip.models.protocol.ClipModel` it follows."""
        return cast("ClipModel", self.model)

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        return F.normalize(self._clip.encode_image(pixels), dim=-1)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        features = self.text_encoder(tokens) if self.text_encoder is not None else self._clip.encode_text(tokens)
        return F.normalize(features, dim=-1)

    def forward(
        self, pixels: torch.Tensor, tokens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        image, text = self.encode_image(pixels), self.encode_text(tokens)
        return image, text, self._clip.logit_scale, getattr(self.model, "logit_bias", None)


def _rng_state(device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), cuda


def _set_rng_state(state: tuple[torch.Tensor, torch.Tensor | None], device: torch.device) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


def backward_step(
    encoder: nn.Module,
    batches: Sequence[Batch],
    loss_fn: nn.Module,
    autocast: Callable[[], AbstractContextManager],
    scale: Callable[[torch.Tensor], torch.Tensor] = lambda loss: loss,
) -> torch.Tensor:
    """Accumulate into ``.grad`` the gradient of the loss over all `batches`; return the (detached) loss.

    `autocast` gives the mixed-precision context of the forward passes; `scale` the loss to back-propagate
    (a GradScaler's ``scale``). With DDP, gradients are synchronised once, in the last backward pass.
    """
    device = batches[0][0].device
    cached: list[tuple[torch.Tensor, torch.Tensor]] = []
    states = [_rng_state(device)] * len(batches)
    if len(batches) > 1:
        with torch.no_grad():
            for k, (pixels, tokens) in enumerate(batches):
                states[k] = _rng_state(device)
                with autocast():
                    image, text, _, _ = encoder(pixels, tokens)
                cached.append((image, text))
    for j, (pixels, tokens) in enumerate(batches):
        last = j == len(batches) - 1
        _set_rng_state(states[j], device)
        sync = nullcontext() if last or not isinstance(encoder, DistributedDataParallel) else encoder.no_sync()
        with sync:
            with autocast():
                image, text, logit_scale, logit_bias = encoder(pixels, tokens)
            images = torch.cat([*(c[0] for c in cached[:j]), image, *(c[0] for c in cached[j + 1 :])])
            texts = torch.cat([*(c[1] for c in cached[:j]), text, *(c[1] for c in cached[j + 1 :])])
            if not last:
                logit_scale = logit_scale.detach()
                logit_bias = None if logit_bias is None else logit_bias.detach()
            loss = loss_fn(images, texts, logit_scale, logit_bias)
            scale(loss).backward()
    return loss.detach()
