"""Exact, platform-independent stand-ins for the tiny ResNet's largest tensors.

A ResNet with torchvision's fixed stage widths keeps 1×1 downsampling convolutions of up to 1024 → 2048 channels
even at its smallest, too large to store here. ``make_golden.py`` replaces every weight with more than ``LARGE``
elements by ``pattern(shape, seed)`` before computing the upstream outputs, and the tests rebuild them the same
way: integer arithmetic, then an exact scaling, so every platform gets the same bits.
"""

from __future__ import annotations

import math

import torch

LARGE = 15_000
"""Weight matrices and kernels with more elements than this are stored as a pattern, not as values."""


def pattern(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """Uniform-looking values in ±1/sqrt(fan_in) from a multiplicative hash of the element index."""
    count = math.prod(shape)
    index = torch.arange(count, dtype=torch.int64) + seed * 7919
    bits = (index * 2654435761) % 4294967296 // 65536  # the hash's top 16 bits: 0 .. 65535
    fan_in = math.prod(shape[1:]) if len(shape) > 1 else count
    bound = torch.tensor(2.0 / math.sqrt(fan_in), dtype=torch.float32)
    return ((bits.to(torch.float32) / 65536.0 - 0.5) * bound).reshape(shape)


def large_keys(state: dict[str, torch.Tensor]) -> list[str]:
    """The keys of ``state`` whose tensors are stored as patterns (in key order; the seed is the position)."""
    return [key for key, value in state.items() if value.ndim >= 2 and value.numel() > LARGE]


def with_patterns(state: dict[str, torch.Tensor], keys: list[str], shapes: dict[str, list[int]]) -> dict:
    """``state`` plus the pattern tensors for ``keys`` (shapes from the golden ``inputs.json``)."""
    full = dict(state)
    for seed, key in enumerate(keys):
        full[key] = pattern(tuple(shapes[key]), seed)
    return full
