"""``load_model``: a registry name, an open_clip architecture name, a hub folder or a checkpoint -> LoadedModel."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path

import open_clip
import torch

from openmedclip.errors import ModelLoadError
from openmedclip.models.checkpoint import read_base_weights, read_state_dict
from openmedclip.models.device import resolve_device, resolve_dtype
from openmedclip.models.hub_folder import CONFIG_FILE, find_weights, read_config
from openmedclip.models.loaded import LoadedModel, ModelSpec
from openmedclip.models.locate import download_hint, registry_folder
from openmedclip.models.open_clip_build import (
    build_model,
    build_preprocess,
    build_tokenizer,
    describe_architecture,
)
from openmedclip.models.registry import REGISTRY, RegistryEntry
from openmedclip.models.strict import load_base_only, load_strict


@dataclass(frozen=True)
class _Source:
    """What to build and from where, before anything is built."""

    architecture: str
    format: str
    model_cfg: dict
    preprocess_cfg: dict
    weights: Path | None
    folder: Path | None = None
    base_weights: dict[str, str] = field(default_factory=dict)
    extra: dict = field(default_factory=dict)


def list_models() -> list[str]:
    """Registry names (pretrained, e.g. ``'biomedclip'``, ``'openai/ViT-B-16'``), then open_clip architectures."""
    return sorted(REGISTRY) + open_clip.list_models()


def load_model(
    name_or_path: str | Path,
    *,
    device: str | torch.device | None = None,
    precision: str = "fp32",
    checkpoint: str | Path | None = None,
) -> LoadedModel:
    """Load a CLIP model offline, in eval mode, on ``device`` with its floating weights in ``precision``.

    ``name_or_path`` is, in this order of precedence:

    - a registry name (see :mod:`openmedclip.models.registry`): pretrained weights found in
      ``$OPENMEDCLIP_MODELS/<name>/`` or the Hugging Face cache, e.g. ``'biomedclip'``, ``'openai/ViT-B-16'``;
    - an open_clip architecture name (``'ViT-B-16'``): random weights, or those in ``checkpoint``;
    - a folder in open_clip's hub format (``open_clip_config.json`` + ``open_clip_model.safetensors``);
    - a checkpoint file with an ``open_clip_config.json`` beside it;
    - an architecture file (``*.json`` shaped like ``open_clip_config.json``): random weights, except the frozen
      towers its ``base_weights`` name, which are loaded (the starting point of training a new model).

    A ``Path`` is always read as a path. ``checkpoint`` replaces the weights of any of these; every key of a
    checkpoint must match the model.
    ``device`` None picks CUDA, else MPS, else CPU; ``precision`` is 'fp32', 'bf16' (fast on CPU) or 'fp16'.
    Raises ``ModelLoadError`` naming the model and the problem.
    """
    name = str(name_or_path)
    target = resolve_device(device)
    dtype = resolve_dtype(precision, target, name)
    weights = Path(checkpoint).expanduser() if checkpoint is not None else None
    source = _locate(name_or_path, weights)
    model = build_model(source.model_cfg, folder=source.folder, name=name)
    if source.weights is not None:
        state = read_base_weights(source.base_weights, name, model.state_dict())
        state.update(read_state_dict(source.weights, name))
        load_strict(model, state, name=name, source=source.weights)
    elif source.base_weights:
        load_base_only(model, read_base_weights(source.base_weights, name, model.state_dict()), source.base_weights)
    preprocess, preprocess_cfg = build_preprocess(model, source.preprocess_cfg)
    tokenizer, context_length = build_tokenizer(source.model_cfg, folder=source.folder, name=name)
    model.to(device=target, dtype=dtype).eval()
    spec = ModelSpec(
        name=name,
        architecture=source.architecture,
        source=str(source.weights) if source.weights is not None else "random",
        format=source.format,
        extra={
            **source.extra,
            "model_cfg": source.model_cfg,
            "preprocess_cfg": preprocess_cfg,
            "base_weights": source.base_weights,
        },
    )
    return LoadedModel(model, preprocess, tokenizer, context_length, spec, target, dtype)


def _locate(name_or_path: str | Path, weights: Path | None) -> _Source:
    if isinstance(name_or_path, str) and name_or_path in REGISTRY:
        entry = REGISTRY[name_or_path]
        return _FORMATS[entry.format](registry_folder(entry), name_or_path, weights, entry)
    if isinstance(name_or_path, str) and name_or_path in open_clip.list_models():
        return _Source(
            architecture=name_or_path,
            format="checkpoint" if weights is not None else "open_clip-arch",
            model_cfg=open_clip.get_model_config(name_or_path),
            preprocess_cfg={},
            weights=weights,
        )
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return _hub_folder(path, str(name_or_path), weights, None)
    if path.is_file() and path.suffix.lower() == ".json":
        return _architecture_file(path, str(name_or_path), weights)
    if path.is_file():
        return _checkpoint_beside_config(path, str(name_or_path), weights)
    raise ModelLoadError(name_or_path, _unknown_name_message(str(name_or_path)))


def _hub_folder(folder: Path, name: str, weights: Path | None, entry: RegistryEntry | None) -> _Source:
    """An open_clip hub folder; for a registry entry with an architecture, a folder with a bare checkpoint."""
    config = folder / CONFIG_FILE
    try:
        if config.is_file():
            model_cfg, preprocess_cfg, base_weights = read_config(config, name)
            weights = weights or find_weights(folder, name)
        elif entry is not None and entry.architecture is not None:
            model_cfg, preprocess_cfg = open_clip.get_model_config(entry.architecture), dict(entry.preprocess)
            base_weights = {}
            weights = weights or find_weights(folder, name, any_checkpoint=True)
        else:
            raise ModelLoadError(name, f"{folder} has no {CONFIG_FILE} (not an open_clip hub folder)")
    except ModelLoadError as error:
        if entry is None:
            raise
        raise ModelLoadError(name, f"{error.problem}. {download_hint(entry)}") from None
    extra: dict = {"folder": str(folder)}
    if entry is not None:
        model_cfg = {**model_cfg, **entry.model_overrides}
        extra["hf_repo"] = entry.hf_repo
    return _Source(
        architecture=entry.architecture if entry and entry.architecture else describe_architecture(model_cfg),
        format="open_clip-hub",
        model_cfg=model_cfg,
        preprocess_cfg=preprocess_cfg,
        weights=weights,
        folder=folder,
        base_weights=base_weights,
        extra=extra,
    )


def _architecture_file(path: Path, name: str, weights: Path | None) -> _Source:
    model_cfg, preprocess_cfg, base_weights = read_config(path, name)
    return _Source(
        architecture=describe_architecture(model_cfg),
        format="checkpoint" if weights is not None else "config",
        model_cfg=model_cfg,
        preprocess_cfg=preprocess_cfg,
        weights=weights,
        folder=path.parent,
        base_weights=base_weights,
    )


def _checkpoint_beside_config(path: Path, name: str, weights: Path | None) -> _Source:
    if weights is not None:
        raise ModelLoadError(name, "give the checkpoint either as the path or as checkpoint=, not both")
    if not (path.parent / CONFIG_FILE).is_file():
        raise ModelLoadError(
            name,
            f"no {CONFIG_FILE} beside {path.name}; name its architecture instead: "
            f"load_model('<architecture>', checkpoint='{path}')",
        )
    return _hub_folder(path.parent, name, path, None)


def _unknown_name_message(name: str) -> str:
    names = list_models()
    by_lower = {candidate.lower(): candidate for candidate in names}
    close = [by_lower[match] for match in difflib.get_close_matches(name.lower(), list(by_lower), n=5, cutoff=0.6)]
    suggestion = f" Close matches: {', '.join(close)}." if close else ""
    return (
        "unknown model: not a registry name, an open_clip architecture, or an existing file or folder."
        f"{suggestion} See openmedclip.models.list_models() for all {len(names)} names."
    )


_FORMATS = {"open_clip-hub": _hub_folder}
"""Readers of a registry entry's folder, by ``RegistryEntry.format``."""
