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


def is_convolutional(model: torch.nn.Module) -> bool:
    """True for a model with a convolutional image tower (a ViT has one convolution: its patch embedding)."""
    convolutions = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            convolutions += 1
            if convolutions > 1:
                return True
    return False


def prefers_channels_last(model: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> bool:
    """Whether ``model`` runs faster with channels-last weights: a convolutional tower in bf16 on the CPU.

    Measured in ``docs/performance.md`` (oneDNN picks its channels-last bf16 kernels from the weights alone);
    fp32 on the CPU measured slower, so it stays NCHW.
    """
    return device.type == "cpu" and dtype == torch.bfloat16 and is_convolutional(model)


def apply_memory_format(model: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> bool:
    """Make ``model``'s weights channels-last where :func:`prefers_channels_last`; True when it did."""
    if not prefers_channels_last(model, device, dtype):
        return False
    model.to(memory_format=torch.channels_last)
    return True
