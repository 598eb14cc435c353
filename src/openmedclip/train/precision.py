"""Mixed precision: weights stay fp32; forward passes run under autocast (bf16, or fp16 with loss scaling)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from functools import partial

import torch

from openmedclip.errors import InvalidInputError

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_factory(precision: str, device: torch.device) -> Callable[[], AbstractContextManager]:
    """A function returning a fresh autocast context for `precision` on `device` (no-op for fp32)."""
    if precision == "fp32":
        return nullcontext
    if precision == "fp16" and device.type != "cuda":
        raise InvalidInputError("precision 'fp16' needs a CUDA device; use 'bf16' on the CPU")
    return partial(torch.autocast, device_type=device.type, dtype=DTYPES[precision])


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler:
    """A GradScaler, enabled only for fp16 (bf16 has fp32's exponent range and needs none)."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")
