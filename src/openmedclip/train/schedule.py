"""Learning-rate schedule: linear warm-up, then cosine decay to zero, counted in optimizer steps."""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LambdaLR


class WarmupCosine:
    """LR multiplier of optimizer step ``step`` (0-based).

    Warm-up: ``(step + 1) / warmup_steps`` for the first ``warmup_steps`` steps (so the first step already
    moves); then ``0.5 * (1 + cos(pi * progress))`` with progress going from 0 to 1 over the remaining steps.
    A plain object (not a closure) so ``LambdaLR.state_dict`` can save it.
    """

    def __init__(self, warmup_steps: int, total_steps: int):
        self.warmup_steps = warmup_steps
        self.total_steps = total_steps

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        progress = (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int) -> LambdaLR:
    """A scheduler to ``step()`` after every optimizer step."""
    return LambdaLR(optimizer, WarmupCosine(warmup_steps, total_steps))
