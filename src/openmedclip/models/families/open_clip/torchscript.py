"""Converting a TorchScript CLIP archive (OpenAI's original ``.pt`` files) to ``.safetensors``, on request."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from openmedclip.errors import ModelLoadError

TORCHSCRIPT_METADATA = ("input_resolution", "context_length", "vocab_size")
"""Non-weight entries of OpenAI's archives."""


def convert_torchscript(source: str | Path, destination: str | Path) -> Path:
    """Write the weights of a TorchScript archive to a ``.safetensors`` file; return its path.

    This runs ``torch.jit.load``, which executes the archive's TorchScript: use it only on files you trust.
    The result loads with ``load_model('<architecture>', checkpoint=destination)`` or from
    ``$OPENMEDCLIP_MODELS/openai/<architecture>/``.
    """
    source, destination = Path(source), Path(destination)
    try:
        module = torch.jit.load(str(source), map_location="cpu")
    except (RuntimeError, ValueError, OSError) as error:
        raise ModelLoadError(source, f"not a readable TorchScript archive: {error}") from None
    state = {
        key: value.detach().clone().contiguous()
        for key, value in module.state_dict().items()
        if key not in TORCHSCRIPT_METADATA
    }
    destination.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(destination), metadata={"format": "pt"})
    return destination
