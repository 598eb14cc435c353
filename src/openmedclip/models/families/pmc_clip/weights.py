"""PMC-CLIP's published weight containers, read into one state dict under the model's key names.

- ``checkpoint.pt``: the training checkpoint (``{"epoch", "state_dict": {"module." + key: ...}, "optimizer", ...}``
  with numpy scalars), read by :func:`openmedclip.models.checkpoint.read_state_dict`.
- The extracted components, side by side in one folder: ``image_encoder(resnet50).pth`` (the ModifiedResNet's state
  dict), ``text_encoder.pth`` (the BERT's state dict) and ``text_projection_layer.pth`` (the bare 768 × 768
  projection tensor). They hold no temperature; the model keeps CLIP's initial ``log(1 / 0.07)``.

Only known-unused parts of the training checkpoint are set aside, by name (:data:`UNUSED_KEYS`,
:data:`UNUSED_PREFIXES`); every other unmatched key fails the strict load.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from openmedclip.errors import ModelLoadError
from openmedclip.models.checkpoint import read_pickle, read_state_dict
from openmedclip.models.families.pmc_clip.config import CHECKPOINT, COMPONENT_FILES

IMAGE_ENCODER, TEXT_ENCODER, TEXT_PROJECTION = COMPONENT_FILES
COMPONENTS = {IMAGE_ENCODER: "visual.", TEXT_ENCODER: "text_encoder."}
"""Component files holding state dicts, with the prefix their keys take in the model."""

UNUSED_KEYS = frozenset({
    "positional_embedding", "ln_final.weight", "ln_final.bias",  # an unused text-transformer stem (BERT replaces it)
    "img_special_token", "mlm_projection",  # the masked-language-modelling head
})
UNUSED_PREFIXES = ("fusion_module.",)
"""The image-text fusion transformer of the MLM objective; retrieval and zero-shot never run it."""
STALE_BUFFERS = frozenset({"text_encoder.embeddings.position_ids"})
"""A buffer that checkpoints written with transformers < 4.31 carry; recomputed on build."""
INITIAL_LOGIT_SCALE = math.log(1 / 0.07)


def find_weights(folder: Path) -> Path | None:
    """``checkpoint.pt`` in ``folder``, else ``folder`` itself when it holds the three components, else None."""
    if (folder / CHECKPOINT).is_file():
        return folder / CHECKPOINT
    if all((folder / name).is_file() for name in COMPONENT_FILES):
        return folder
    return None


def read_weights(path: Path, name: str) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file, or of a folder of the extracted components, under the model's keys."""
    if not path.is_dir():
        return read_state_dict(path, name)
    missing = [file for file in COMPONENT_FILES if not (path / file).is_file()]
    if missing:
        raise ModelLoadError(name, f"{path}: the extracted components lack {', '.join(missing)}")
    state = {
        prefix + key: value
        for file, prefix in COMPONENTS.items()
        for key, value in read_state_dict(path / file, name).items()
    }
    state["text_projection"] = _read_tensor(path / TEXT_PROJECTION, name)
    state["logit_scale"] = torch.tensor(INITIAL_LOGIT_SCALE)
    return state


def without_unused(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` less the training checkpoint's known-unused parts."""
    return {key: value for key, value in state.items()
            if key not in UNUSED_KEYS and not key.startswith(UNUSED_PREFIXES)}


def _read_tensor(path: Path, name: str) -> torch.Tensor:
    value = read_pickle(path, name)
    if not isinstance(value, torch.Tensor):
        raise ModelLoadError(name, f"{path}: expected a bare tensor, found {type(value).__name__}")
    return value.detach()
