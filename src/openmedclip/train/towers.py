"""Getting a loaded model ready to train: train mode, a SigLIP bias, frozen towers, gradient checkpointing.

Tower locking and the frozen-text cache are capabilities of the model's family.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

from openmedclip.models import LoadedModel
from openmedclip.train.losses import SIGLIP_INIT_BIAS

log = logging.getLogger(__name__)

TEXT_CACHE_ENTRIES = 100_000
"""Most distinct captions whose frozen text-transformer output is kept (about 150 MB at width 384)."""


def prepare_model(
    loaded: LoadedModel,
    *,
    loss: str = "infonce",
    lock_image: bool | int = False,
    lock_text: bool | int = False,
    grad_checkpointing: bool = False,
) -> tuple[LoadedModel, Callable[[torch.Tensor], torch.Tensor] | None]:
    """Set `loaded.model` up for training in place; return the `LoadedModel` to save checkpoints with and, when
    the text transformer is frozen, the family's cached text encoder (None otherwise).

    ``loss='siglip'`` on a model without ``logit_bias`` adds one (initialised to -10, as in SigLIP) and records
    it in the saved config. ``lock_*=True`` freezes a tower, an int N freezes all but its last N layer groups
    (for open_clip: ``lock_image_tower(unlocked_groups=N)`` / ``lock_text_tower(unlocked_layers=N)``).
    """
    model = loaded.model
    family = loaded.family
    model.train()
    if loss == "siglip" and getattr(model, "logit_bias", None) is None:
        loaded = family.add_logit_bias(loaded, SIGLIP_INIT_BIAS)
    family.lock_towers(model, image=lock_image, text=lock_text)
    text_encoder = family.frozen_text_encoder(model, max_entries=TEXT_CACHE_ENTRIES) if lock_text is not False else None
    if grad_checkpointing:
        if hasattr(model, "set_grad_checkpointing"):
            model.set_grad_checkpointing(True)
        else:
            log.warning("%s has no set_grad_checkpointing(); training without it", type(model).__name__)
    return loaded, text_encoder
