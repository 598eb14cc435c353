"""open_clip's architecture configs read from its package files, without importing open_clip (fast), plus any
registered with :func:`register_architecture`."""

from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path
from typing import Any

from openmedclip.errors import ModelLoadError

EXTRA_ARCHITECTURES: dict[str, dict[str, Any]] = {}
"""Architectures registered from code (name -> open_clip model config)."""


def register_architecture(name: str, model_cfg: dict[str, Any]) -> None:
    """Make ``name`` an architecture of the open_clip family (e.g. a model config of your own)."""
    EXTRA_ARCHITECTURES[name] = dict(model_cfg)


@functools.cache
def _config_files() -> dict[str, Path]:
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        return {}
    folder = Path(next(iter(spec.submodule_search_locations))) / "model_configs"
    return {path.stem: path for path in folder.glob("*.json")}


def architectures() -> list[str]:
    """open_clip's architecture names in open_clip's own order (``open_clip.list_models()``), then registered ones."""
    return sorted(_config_files(), key=_natural_key) + [name for name in EXTRA_ARCHITECTURES if name not in
                                                          _config_files()]


def architecture_config(name: str) -> dict[str, Any]:
    """A copy of the model config of architecture ``name`` (what ``open_clip.get_model_config`` returns)."""
    if name in EXTRA_ARCHITECTURES:
        return json.loads(json.dumps(EXTRA_ARCHITECTURES[name]))
    path = _config_files().get(name)
    if path is None:
        raise ModelLoadError(name, "not an open_clip architecture")
    return json.loads(path.read_text(encoding="utf-8"))


def _natural_key(name: str) -> list[Any]:
    import re

    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name.lower())]
