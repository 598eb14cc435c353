"""openmedclip's own model folder, for families without a published format that records everything (fine-tuned
MedCLIP, BioViL, PMC-CLIP, GLoRIA and CheXzero models).

A folder holds ``openmedclip_model.json`` (the family, the architecture and the family's typed config as JSON),
``model.safetensors`` (the module's own state dict: no pickles, no conversion on reading) and whatever files the
family's tokenizer and text tower read (written by :meth:`~openmedclip.models.family.ModelFamily.save_files`).
``load_model(folder)`` reads it back with the family's config type, so it works offline and anywhere.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from openmedclip.errors import ModelLoadError

if TYPE_CHECKING:
    import torch

    from openmedclip.models.family import ModelFamily, Resolved
    from openmedclip.models.loaded import LoadedModel

SAVED_CONFIG = "openmedclip_model.json"
SAVED_WEIGHTS = "model.safetensors"
FORMAT = "openmedclip-folder"
FORMAT_VERSION = 1


def is_saved_folder(path: Path) -> bool:
    """Whether ``path`` is a folder written by :func:`save_folder`."""
    return path.is_dir() and (path / SAVED_CONFIG).is_file()


def save_folder(family: ModelFamily, loaded: LoadedModel, folder: Path, *, dtype: torch.dtype | None = None) -> Path:
    """Write ``loaded`` into ``folder`` (created if needed); floating weights stored in ``dtype`` (default: as is)."""
    from pydantic import TypeAdapter
    from safetensors.torch import save

    from openmedclip.atomic import write_atomic, write_json

    folder.mkdir(parents=True, exist_ok=True)
    family.save_files(loaded, folder)
    state = {key: stored_tensor(value, dtype) for key, value in loaded.model.state_dict().items()}
    write_atomic(folder / SAVED_WEIGHTS, lambda handle: handle.write(save(state, metadata={"format": "pt"})))
    config = TypeAdapter(family.config_type).dump_python(loaded.spec.config, mode="json")
    write_json(folder / SAVED_CONFIG, {"format_version": FORMAT_VERSION, "family": family.name,
                                       "architecture": loaded.spec.architecture, "config": config})
    return folder


def read_folder(folder: Path) -> tuple[ModelFamily, Resolved]:
    """The family and resolved config of a saved folder; ``ModelLoadError`` naming the problem otherwise."""
    from pydantic import TypeAdapter, ValidationError

    from openmedclip.models.family import Resolved, get_family

    path = folder / SAVED_CONFIG
    try:
        payload: Any = json.loads(path.read_text(encoding="utf-8"))
        family = get_family(str(payload["family"]))
        config: Any = TypeAdapter(family.config_type).validate_python(payload["config"])
        architecture = str(payload["architecture"])
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValidationError) as error:
        raise ModelLoadError(folder, f"{path} is not a readable openmedclip model config ({error})") from None
    if payload.get("format_version") != FORMAT_VERSION:
        raise ModelLoadError(folder, f"{path}: unsupported format_version {payload.get('format_version')!r}")
    return family, Resolved(family.name, config, architecture, FORMAT, folder / SAVED_WEIGHTS, folder=folder)


def load_saved_weights(family: ModelFamily, model: torch.nn.Module, resolved: Resolved, *, name: str) -> None:
    """Copy a saved folder's weights into ``model``: its own key names, every key matched."""
    from openmedclip.models.checkpoint import read_state_dict
    from openmedclip.models.strict import load_strict

    assert resolved.weights is not None
    state = read_state_dict(resolved.weights, name)
    load_strict(model, state, name=name, source=resolved.weights, tolerated=family.tolerated_keys)


def stored_tensor(tensor: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    """A detached, contiguous CPU copy of ``tensor`` (floating ones in ``dtype`` when given), for safetensors."""
    tensor = tensor.detach().cpu()
    if dtype is not None and tensor.is_floating_point():
        tensor = tensor.to(dtype)
    return tensor.clone().contiguous()
