"""Precisions in one table: names, torch dtypes, and how inference and training use them.

Inference casts the weights (``load_model(..., precision='bf16')``, what makes bf16 fast on CPU); training keeps
fp32 weights and runs forward passes under autocast (bf16, or fp16 with loss scaling on CUDA).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from functools import partial
from typing import TYPE_CHECKING, Literal, get_args

from openmedclip.errors import InvalidInputError

if TYPE_CHECKING:
    import torch

Precision = Literal["fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
"""Precision names accepted everywhere (options, recipes, export)."""


def torch_dtype(precision: str) -> torch.dtype:
    """The torch dtype of a precision name; ``InvalidInputError`` for an unknown one."""
    import torch

    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    if precision not in dtypes:
        raise InvalidInputError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    return dtypes[precision]


def inference_dtype(precision: str, device: torch.device) -> torch.dtype:
    """The weight dtype for inference in ``precision`` on ``device`` (fp16 is refused on the CPU)."""
    dtype = torch_dtype(precision)
    if precision == "fp16" and device.type == "cpu":
        raise InvalidInputError("precision 'fp16' is slow or unsupported on CPU; use precision='bf16' there")
    return dtype


def autocast_factory(precision: str, device: torch.device) -> Callable[[], AbstractContextManager]:
    """A function returning a fresh autocast context for `precision` on `device` (no-op for fp32)."""
    import torch

    dtype = torch_dtype(precision)
    if precision == "fp32":
        return nullcontext
    if precision == "fp16" and device.type != "cuda":
        raise InvalidInputError("precision 'fp16' needs a CUDA device; use 'bf16' on the CPU")
    return partial(torch.autocast, device_type=device.type, dtype=dtype)


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler:
    """A GradScaler, enabled only for fp16 (bf16 has fp32's exponent range and needs none)."""
    import torch

    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")
