"""Choosing the device and the weight dtype a model runs with."""

from __future__ import annotations

import torch

from openmedclip.errors import InvalidInputError, ModelLoadError

PRECISIONS: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """The device to run on: the one given, else CUDA if available, else Apple MPS if available, else CPU.

    Raises ``InvalidInputError`` when an accelerator is asked for by name but is not available.
    """
    if device is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise InvalidInputError(f"device {device!r} is not a valid torch device: {error}") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError(f"device {device!r} asked for, but CUDA is not available (use 'cpu')")
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise InvalidInputError(f"device {device!r} asked for, but Apple MPS is not available (use 'cpu')")
    return resolved


def resolve_dtype(precision: str, device: torch.device, model: str) -> torch.dtype:
    """The floating dtype for ``precision`` ('fp32', 'bf16' or 'fp16') on ``device``."""
    if precision not in PRECISIONS:
        raise ModelLoadError(model, f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision == "fp16" and device.type == "cpu":
        raise ModelLoadError(model, "precision 'fp16' is slow or unsupported on CPU; use precision='bf16' there")
    return PRECISIONS[precision]
