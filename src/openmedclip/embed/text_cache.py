"""Sentence features kept per model × exact sentence list, in memory and on disk, so that zero-shot classifiers
are encoded once.

The key is a SHA-256 over the model's identity and the sentences. A model loaded from a weights file is known by
its spec and configs, the file's path, size and modification time, its dtype and device type, and the version
counters of its tensors (which every in-place change, an optimiser step included, advances), so a model changed
in memory never reads what its file's features were. Such entries also go to disk, as ``<key>.npy`` (float32,
written atomically) under ``$OPENMEDCLIP_CACHE/text`` (default ``$XDG_CACHE_HOME/openmedclip/text``, else
``~/.cache/openmedclip/text``); a file that does not read back as the expected array is ignored and rewritten.
``OPENMEDCLIP_TEXT_CACHE=off`` turns the disk cache off.
A model without a weights file (random weights) is cached in memory only, under an identity of its own.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import threading
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from openmedclip.atomic import write_npy
from openmedclip.models.loaded import LoadedModel

MEMORY_ENTRIES = 256
"""How many sentence lists the in-memory cache holds (least recently used dropped first)."""

_OFF = {"0", "off", "false", "no"}


@dataclasses.dataclass(frozen=True)
class _Identity:
    versions: int
    dtype: torch.dtype
    device: str
    key: str
    persistent: bool


_identities: weakref.WeakKeyDictionary[torch.nn.Module, _Identity] = weakref.WeakKeyDictionary()
_memory: OrderedDict[str, torch.Tensor] = OrderedDict()
_lock = threading.Lock()


def cache_folder() -> Path | None:
    """Where text features are stored on disk, or None when the disk cache is off."""
    if os.environ.get("OPENMEDCLIP_TEXT_CACHE", "").strip().lower() in _OFF:
        return None
    root = os.environ.get("OPENMEDCLIP_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache") / "openmedclip"
    return Path(root).expanduser() / "text"


def clear_memory() -> None:
    """Forget every in-memory entry (the disk cache stays)."""
    with _lock:
        _memory.clear()


def _digest(payload: object) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def _versions(model: torch.nn.Module) -> int | None:
    """The sum of the tensors' version counters; None for inference tensors, which have none."""
    try:
        return sum(tensor._version for tensor in itertools.chain(model.parameters(), model.buffers()))
    except RuntimeError:
        return None


def _identity(loaded: LoadedModel) -> _Identity | None:
    versions = _versions(loaded.model)
    if versions is None:
        return None
    known = _identities.get(loaded.model)
    if known and (known.versions, known.dtype, known.device) == (versions, loaded.dtype, loaded.device.type):
        return known
    spec, weights = loaded.spec, Path(loaded.spec.source)
    if spec.source != "random" and weights.is_file():
        config = spec.config
        info = weights.stat()
        key = _digest({
            "family": spec.family, "architecture": spec.architecture, "format": spec.format, "folder": spec.folder,
            "config": dataclasses.asdict(config) if dataclasses.is_dataclass(config) and not isinstance(config, type)
            else config,
            "weights": [str(weights.resolve()), info.st_size, info.st_mtime_ns],
            "versions": versions, "dtype": str(loaded.dtype), "device": loaded.device.type,
        })
        identity = _Identity(versions, loaded.dtype, loaded.device.type, key, persistent=True)
    else:
        identity = _Identity(versions, loaded.dtype, loaded.device.type, uuid.uuid4().hex, persistent=False)
    _identities[loaded.model] = identity
    return identity


def _read(path: Path, rows: int) -> torch.Tensor | None:
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if array.dtype != np.float32 or array.ndim != 2 or array.shape[0] != rows:
        return None
    return torch.from_numpy(array)


def _recall(key: str) -> torch.Tensor | None:
    with _lock:
        features = _memory.get(key)
        if features is not None:
            _memory.move_to_end(key)
        return features


def _remember(key: str, features: torch.Tensor) -> None:
    with _lock:
        _memory[key] = features
        _memory.move_to_end(key)
        while len(_memory) > MEMORY_ENTRIES:
            _memory.popitem(last=False)


def cached_text_features(
    loaded: LoadedModel, sentences: Sequence[str], encode: Callable[[], torch.Tensor]
) -> torch.Tensor:
    """The ``[N, D]`` float32 features of ``sentences`` under ``loaded``: from memory, else from disk, else
    ``encode()`` (stored in both). The caller gets its own copy."""
    identity = _identity(loaded)
    if identity is None:
        return encode()
    key = _digest([identity.key, loaded.context_length, list(sentences)])
    features = _recall(key)
    if features is None:
        folder = cache_folder() if identity.persistent else None
        path = folder / f"{key}.npy" if folder is not None else None
        features = _read(path, len(sentences)) if path is not None else None
        if features is None:
            features = encode().float().cpu().contiguous()
            if path is not None:
                try:
                    write_npy(path, features.numpy())
                except OSError:
                    pass  # a read-only or full cache folder only costs the next process an encode
        _remember(key, features)
    return features.clone()
