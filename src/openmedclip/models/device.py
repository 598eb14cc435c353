"""Choosing the device a model runs on."""

from __future__ import annotations

import torch

from openmedclip.errors import InvalidInputError


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
