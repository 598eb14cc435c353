"""Precisions in one table: names, torch dtypes, the per-device default, and how inference and training use them.

Inference casts the weights (``load_model(..., precision='bf16')``, what makes bf16 fast on CPU); training keeps
fp32 weights and runs forward passes under autocast (bf16, or fp16 with loss scaling on CUDA).

``precision='auto'`` (inference's default) resolves per device, see :func:`default_precision`; the environment
variable ``OPENMEDCLIP_PRECISION`` (a precision name) replaces that choice wherever 'auto' is asked for.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from functools import partial
from typing import TYPE_CHECKING, Literal, cast, get_args

from openmedclip.errors import InvalidInputError

if TYPE_CHECKING:
    import torch

Precision = Literal["fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
"""Precision names accepted everywhere (options, recipes, export)."""

AUTO = "auto"
"""The inference precision that resolves per device (:func:`resolve_precision`)."""
INFERENCE_PRECISIONS: tuple[str, ...] = (AUTO, *PRECISIONS)
"""What ``load_model`` and the inference commands accept."""
TrainPrecision = Literal["fp32", "bf16", "fp16", "auto"]
"""What a training recipe accepts: a precision, or 'auto' (resolved per device, as for inference)."""
PRECISION_ENV = "OPENMEDCLIP_PRECISION"
"""Environment variable: the precision 'auto' resolves to, instead of the per-device default."""


def torch_dtype(precision: str) -> torch.dtype:
    """The torch dtype of a precision name; ``InvalidInputError`` for an unknown one."""
    import torch

    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    if precision not in dtypes:
        raise InvalidInputError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    return dtypes[precision]


def default_precision(device: torch.device) -> Precision:
    """The fastest precision whose predictions match fp32 on ``device``.

    CPU: bf16 where it has AVX-512 BF16 or AMX units, else fp32. CUDA: bf16 where the GPU runs it natively
    (compute capability 8 and later), else fp16. Anything else (MPS included): fp32.
    """
    import torch

    if device.type == "cpu":
        from openmedclip.hardware import cpu_info

        return "bf16" if cpu_info().fast_bf16 else "fp32"
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp16"
    return "fp32"


def resolve_precision(precision: str, device: torch.device) -> Precision:
    """``precision`` itself, or for 'auto' ``$OPENMEDCLIP_PRECISION`` when set, else :func:`default_precision`."""
    if precision != AUTO:
        if precision not in PRECISIONS:
            raise InvalidInputError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)} or '{AUTO}'")
        return cast("Precision", precision)
    chosen = os.environ.get(PRECISION_ENV, "").strip().lower()
    if chosen in ("", AUTO):
        return default_precision(device)
    if chosen not in PRECISIONS:
        raise InvalidInputError(f"{PRECISION_ENV}={chosen!r} is not one of {', '.join(INFERENCE_PRECISIONS)}")
    return cast("Precision", chosen)


def precision_name(dtype: torch.dtype) -> str:
    """The precision name of a torch dtype ('bf16' for ``torch.bfloat16``), for reports."""
    for name in PRECISIONS:
        if torch_dtype(name) == dtype:
            return name
    return str(dtype).removeprefix("torch.")


def inference_dtype(precision: str, device: torch.device) -> torch.dtype:
    """The weight dtype for inference in ``precision`` (or 'auto', resolved) on ``device``; fp16 is refused on CPU."""
    precision = resolve_precision(precision, device)
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
