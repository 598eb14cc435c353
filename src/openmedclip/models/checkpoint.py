"""Reading a checkpoint file into a flat ``{key: tensor}`` dict, safely.

``.safetensors`` is read directly; ``.pt``/``.pth``/``.bin``/``.ckpt`` pickles only with
``torch.load(weights_only=True)``, which refuses anything but tensors and plain containers, plus an allowlist of
numpy scalar and dtype types (training checkpoints such as UniMed-CLIP's hold them); any other global is refused by
name.
TorchScript archives (OpenAI's original CLIP files) are read by a restricted reader that never runs their code
(:mod:`openmedclip.models.torchscript_reader`).
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Container, Mapping
from pathlib import Path
from typing import Any

import torch

from openmedclip.errors import ModelLoadError
from openmedclip.models.torchscript_reader import TorchScriptReadError, is_torchscript, read_torchscript_state_dict

PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
CHECKPOINT_SUFFIXES = (".safetensors", *PICKLE_SUFFIXES)
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "module")
"""Keys under which training scripts commonly nest the weights."""
WRAPPER_PREFIXES = ("module.", "_orig_mod.")
"""Prefixes added by DataParallel/DDP and torch.compile."""


def read_state_dict(path: Path, model: str) -> dict[str, torch.Tensor]:
    """The tensors of the checkpoint at ``path``, unwrapped and without DDP/compile prefixes."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(model, f"checkpoint file not found: {path}")
    suffix = path.suffix.lower()
    raw: object
    if suffix == ".safetensors":
        raw = _read_safetensors(path, model)
    elif suffix in PICKLE_SUFFIXES:
        raw = read_pickle(path, model)
    else:
        raise ModelLoadError(
            model, f"{path}: unsupported checkpoint type '{suffix}' (use one of {', '.join(CHECKPOINT_SUFFIXES)})"
        )
    return _strip_prefixes(_unwrap(raw, path, model))


def _read_safetensors(path: Path, model: str) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as error:
        raise ModelLoadError(model, f"{path}: not a readable safetensors file ({error})") from None


def read_pickle(path: Path, model: str) -> object:
    """The object in a pickled checkpoint, read safely (TorchScript by its reader, else weights-only + numpy)."""
    if is_torchscript(path):
        try:
            return read_torchscript_state_dict(path)
        except (TorchScriptReadError, zipfile.BadZipFile, KeyError, RuntimeError) as error:
            raise ModelLoadError(model, f"{path}: not a readable TorchScript archive ({error})") from None
    try:
        with torch.serialization.safe_globals(numpy_allowlist()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ModelLoadError(
            model,
            f"{path}: refused to unpickle; the file holds Python objects other than tensors, which "
            f"torch.load(weights_only=True) rejects ({_refusal_reason(error)}). Save only the state dict, "
            "preferably as .safetensors",
        ) from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile) as error:
        raise ModelLoadError(model, f"{path}: not a readable PyTorch checkpoint ({error})") from None


def numpy_allowlist() -> list[Any]:
    """The numpy types training checkpoints hold beside their tensors (metric values, scaler state), allowed in
    ``torch.load(weights_only=True)``: the scalar constructor under its numpy-2 and numpy-1 names (a numpy-1 pickle
    names ``numpy.core.multiarray.scalar``), ``numpy.dtype`` and the dtype classes. None of them runs code."""
    import numpy as np
    from numpy._core.multiarray import scalar

    dtype_classes = [type(np.dtype(code)) for code in "?bBhHiIlLqQefdgFDGSUVOMm"]
    return [scalar, (scalar, "numpy.core.multiarray.scalar"), np.dtype, *dict.fromkeys(dtype_classes)]


def _refusal_reason(error: pickle.UnpicklingError) -> str:
    """The one informative sentence of torch's weights-only refusal (names the offending class)."""
    for line in str(error).splitlines():
        if "WeightsUnpickler error:" in line:
            return line.split("WeightsUnpickler error:", 1)[1].split(". ")[0].strip()
        if "GLOBAL" in line:  # a global of a blocked module (os, subprocess, builtins.exec, ...)
            return line.strip().rstrip(".").replace("Trying to load unsupported GLOBAL", "unsupported global")
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _unwrap(raw: object, path: Path, model: str) -> dict[str, torch.Tensor]:
    while isinstance(raw, Mapping):
        nested = next((raw[key] for key in WRAPPER_KEYS if isinstance(raw.get(key), Mapping)), None)
        if nested is None:
            break
        raw = nested
    if not isinstance(raw, Mapping) or not raw:
        raise ModelLoadError(model, f"{path}: expected a dict of tensors, found {type(raw).__name__}")
    not_tensors = [str(key) for key, value in raw.items() if not isinstance(value, torch.Tensor)]
    if not_tensors:
        raise ModelLoadError(
            model, f"{path}: {len(not_tensors)} entries are not tensors: {', '.join(not_tensors[:10])}"
        )
    return {str(key): value for key, value in raw.items()}


def _strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    for prefix in WRAPPER_PREFIXES:
        if all(key.startswith(prefix) for key in state):
            state = {key[len(prefix):]: value for key, value in state.items()}
    return state


def read_base_weights(
    base_weights: dict[str, str], model: str, wanted: Container[str]
) -> dict[str, torch.Tensor]:
    """Tensors of frozen towers kept outside a model folder, each key under its state-dict prefix.

    A location is a weights file, or a folder (a Hugging Face model folder, the hub cache entry of a repository,
    or ``package:<python package>/<path>``) holding ``model.safetensors``. Such a file is a general-purpose
    encoder, so only the keys in ``wanted`` are taken (e.g. a BERT pooler that CLIP does not use is left out);
    keys the model needs and neither file has still fail strict loading.
    """
    from openmedclip.models.hf_local import text_config_dir

    state: dict[str, torch.Tensor] = {}
    for prefix, location in base_weights.items():
        path = Path(location).expanduser()
        if not path.is_file():
            path = text_config_dir(location, None, model) / "model.safetensors"
        tensors = read_state_dict(path, model).items()
        state.update({prefix + key: value for key, value in tensors if prefix + key in wanted})
    return state
