"""A feature cache for evaluation runs, so that a re-run skips encoding.

Entries are keyed by a SHA-256 over three fingerprints:

- **model**: the spec (name, architecture, format, weights location), the model and preprocessing configs, the
  ``repr`` of the preprocessing transform, dtype and device type, and the weights file's size and modification
  time (for randomly initialised models, a hash of the parameters);
- **data**: the source type and read options, the keys of the encoded rows (so ``--limit`` subsets differ), and the
  size and modification time of every image file (file sources) or of the container file (``.npz``, shards);
- **kind**: image features, or the exact list of texts.

Image features are stored as ``<key>.npy`` (float32, L2-normalised) plus ``<key>.json`` (row indices and unreadable
items); both are written atomically, the JSON last, so an entry without its JSON is ignored.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from openmedclip.atomic import write_json, write_npy
from openmedclip.data.base import DataSource
from openmedclip.embed.engine import EncodedImages, ItemError
from openmedclip.models.loaded import LoadedModel


def digest(payload: Any) -> str:
    """SHA-256 hex digest of a JSON-serialisable payload (keys sorted; other objects by ``str``)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def _stat(path: Path) -> list:
    info = path.stat()
    return [str(path.resolve()), info.st_size, info.st_mtime_ns]


def _parameter_digest(model: torch.nn.Module) -> str:
    sha = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        sha.update(name.encode("utf-8"))
        sha.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return sha.hexdigest()


def model_fingerprint(loaded: LoadedModel) -> dict[str, Any]:
    """What decides a model's features: spec, configs, preprocessing, dtype, device type and the weights."""
    spec = loaded.spec
    weights = Path(spec.source)
    return {
        "name": spec.name,
        "family": spec.family,
        "architecture": spec.architecture,
        "format": spec.format,
        "source": spec.source,
        "config": (
            dataclasses.asdict(spec.config)
            if dataclasses.is_dataclass(spec.config) and not isinstance(spec.config, type)
            else spec.config
        ),
        "folder": spec.folder,
        "preprocess": repr(loaded.preprocess),
        "dtype": str(loaded.dtype),
        "device": loaded.device.type,
        "weights": _stat(weights) if weights.is_file() else _parameter_digest(loaded.model),
    }


def _container_files(source: DataSource, spec: Mapping[str, Any]) -> list[Path]:
    urls = getattr(source, "urls", None)
    if urls:
        return [Path(u) for u in urls if Path(u).is_file()]
    path = Path(str(spec.get("path", "")))
    return [path] if path.is_file() else []


def data_fingerprint(source: DataSource, rows: Sequence[int], spec: Mapping[str, Any]) -> dict[str, Any]:
    """What decides which pixels rows ``rows`` of ``source`` hold (``spec`` is the resolved source spec)."""
    paths = getattr(source, "paths", None)
    files = [paths[i] for i in rows] if paths is not None else _container_files(source, spec)
    return {
        "type": type(source).__name__,
        "read_options": getattr(source, "read_options", None),
        "keys": digest([source.keys[i] for i in rows]),
        "files": digest([_stat(Path(f)) for f in files]),
    }


class FeatureCache:
    """Image and text features on disk under ``folder``; ``folder=None`` disables caching."""

    def __init__(self, folder: Path | None):
        self.folder = folder

    def images(self, key: str, compute: Callable[[], EncodedImages]) -> tuple[EncodedImages, bool]:
        """The cached features for ``key``, else ``compute()`` stored; and whether it was a hit."""
        if self.folder is None:
            return compute(), False
        array, meta = self.folder / "images" / f"{key}.npy", self.folder / "images" / f"{key}.json"
        if meta.is_file() and array.is_file():
            info = json.loads(meta.read_text(encoding="utf-8"))
            errors = [ItemError(**e) for e in info["errors"]]
            return EncodedImages(torch.from_numpy(np.load(array)), info["indices"], info["items"], errors), True
        encoded = compute()
        write_npy(array, encoded.features.numpy().astype(np.float32))
        error_records = [e.to_dict() for e in encoded.errors]
        write_json(meta, {"indices": encoded.indices, "items": encoded.items, "errors": error_records})
        return encoded, False

    def texts(self, key: str, compute: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, bool]:
        """The cached text features for ``key``, else ``compute()`` stored; and whether it was a hit."""
        if self.folder is None:
            return compute(), False
        array = self.folder / "texts" / f"{key}.npy"
        if array.is_file():
            return torch.from_numpy(np.load(array)), True
        features = compute()
        write_npy(array, features.numpy().astype(np.float32))
        return features, False
