"""Getting a loaded model ready to train: train mode, a SigLIP bias, frozen towers, gradient checkpointing."""

from __future__ import annotations

import dataclasses
import logging

import torch
from open_clip.hf_model import HFTextEncoder
from torch import nn

from openmedclip.errors import InvalidInputError
from openmedclip.models import LoadedModel
from openmedclip.train.losses import SIGLIP_INIT_BIAS

log = logging.getLogger(__name__)


def prepare_model(
    loaded: LoadedModel,
    *,
    loss: str = "infonce",
    lock_image: bool | int = False,
    lock_text: bool | int = False,
    grad_checkpointing: bool = False,
) -> LoadedModel:
    """Set `loaded.model` up for training in place; return the `LoadedModel` to save checkpoints with.

    ``loss='siglip'`` on a model without ``logit_bias`` adds one (initialised to -10, as in SigLIP) and records
    it in the saved config. ``lock_*=True`` freezes a tower, an int N freezes all but its last N layers
    (open_clip's ``lock_image_tower(unlocked_groups=N)`` / ``lock_text_tower(unlocked_layers=N)``).
    """
    model = loaded.model
    model.train()
    if loss == "siglip" and getattr(model, "logit_bias", None) is None:
        loaded = _add_logit_bias(loaded)
    if lock_image is not False:
        _call(model, "lock_image_tower", unlocked_groups=_unlocked(lock_image))
    if lock_text is not False:
        _call(model, "lock_text_tower", unlocked_layers=_unlocked(lock_text))
        memoise_frozen_text(model)
    if grad_checkpointing:
        if hasattr(model, "set_grad_checkpointing"):
            model.set_grad_checkpointing(True)
        else:
            log.warning("%s has no set_grad_checkpointing(); training without it", type(model).__name__)
    return loaded


def memoise_frozen_text(model: nn.Module) -> bool:
    """Compute a frozen Hugging Face text transformer once per distinct caption; return whether it applies.

    With every transformer weight frozen (as in LiT), only the projection learns, so the pooled transformer output
    of a caption never changes: it is kept (on the model's device, one vector per distinct token sequence) and the
    transformer runs in eval mode (no dropout). Caption sets of training recipes are small, so this removes
    nearly all text-tower compute. The model's state dict is unchanged.
    """
    text = getattr(model, "text", None)
    if not isinstance(text, HFTextEncoder) or text.output_tokens:
        return False
    if any(parameter.requires_grad for parameter in text.transformer.parameters()):
        return False
    transformer = text.transformer.eval()
    transformer.train = lambda mode=True: transformer  # stays in eval mode when the model switches to train
    pooled_by_tokens: dict[tuple[int, ...], torch.Tensor] = {}

    def forward(tokens: torch.Tensor) -> torch.Tensor:
        keys = [tuple(row) for row in tokens.tolist()]
        new = sorted({i for i, key in enumerate(keys) if key not in pooled_by_tokens}, key=lambda i: keys[i])
        if new:
            batch = tokens[new]
            mask = (batch != text.config.pad_token_id).long()
            with torch.no_grad():
                pooled = text.pooler(transformer(input_ids=batch, attention_mask=mask), mask)
            pooled_by_tokens.update({keys[i]: row for i, row in zip(new, pooled)})
        return text.proj(torch.stack([pooled_by_tokens[key] for key in keys]))

    text.forward = forward
    return True


def _unlocked(lock: bool | int) -> int:
    return 0 if lock is True else int(lock)


def _call(model: nn.Module, method: str, **kwargs: int) -> None:
    if not hasattr(model, method):
        raise InvalidInputError(f"{type(model).__name__} has no {method}(); cannot lock its tower")
    getattr(model, method)(**kwargs)


def _add_logit_bias(loaded: LoadedModel) -> LoadedModel:
    model = loaded.model
    model.logit_bias = nn.Parameter(torch.full_like(model.logit_scale, SIGLIP_INIT_BIAS))
    model_cfg = loaded.spec.extra.get("model_cfg")
    if model_cfg is None:
        return loaded
    extra = {**loaded.spec.extra, "model_cfg": {**model_cfg, "init_logit_bias": SIGLIP_INIT_BIAS}}
    return dataclasses.replace(loaded, spec=dataclasses.replace(loaded.spec, extra=extra))
