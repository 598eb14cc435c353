"""The optimizer: AdamW over the trainable parameters, without weight decay on biases, norms and scales."""

from __future__ import annotations

import torch
from torch import nn

from openmedclip.errors import InvalidInputError

BETAS = (0.9, 0.98)
EPS = 1e-6
"""CLIP's AdamW settings."""


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Trainable parameters in two groups: matrices/embeddings (decayed) and the rest (biases, norm gains,
    ``logit_scale``/``logit_bias``: not decayed). Frozen parameters are left out."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for param in model.parameters():
        if param.requires_grad:
            (decay if param.ndim >= 2 else no_decay).append(param)
    if not decay and not no_decay:
        raise InvalidInputError("every parameter of the model is frozen; nothing to train")
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    return torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=BETAS, eps=EPS)
