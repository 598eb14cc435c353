"""Finding what an open_clip model is built from: a registry entry's folder, an architecture name, a hub
folder, an architecture file or a checkpoint beside its config."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from openmedclip.errors import ModelLoadError
from openmedclip.models.families.open_clip.catalog import architecture_config
from openmedclip.models.families.open_clip.config import OpenClipConfig, OpenClipEntry
from openmedclip.models.families.open_clip.hub_folder import (
    CONFIG_FILE,
    find_weights,
    read_config,
)
from openmedclip.models.family import Resolved
from openmedclip.models.locate import download_hint, registry_folder
from openmedclip.models.registry import RegistryEntry

FAMILY = "open_clip"


def resolve_entry(entry: RegistryEntry, weights: Path | None) -> Resolved:
    """A registry entry: its hub folder, or a folder with a bare checkpoint of the entry's architecture."""
    return hub_folder(registry_folder(entry), entry.name, weights, entry)


def resolve_architecture(architecture: str, weights: Path | None) -> Resolved:
    """An open_clip architecture with random weights, or with those of ``weights``."""
    return Resolved(
        family=FAMILY,
        config=OpenClipConfig(architecture_config(architecture), {}),
        architecture=architecture,
        format="checkpoint" if weights is not None else "open_clip-arch",
        weights=weights,
    )


def resolve_path(path: Path, name: str, weights: Path | None) -> Resolved:
    """A hub folder, an architecture ``.json`` file, or a checkpoint file with the config beside it."""
    if path.is_dir():
        return hub_folder(path, name, weights, None)
    if path.suffix.lower() == ".json":
        config = read_config(path, name)
        return Resolved(
            family=FAMILY,
            config=config,
            architecture=describe_architecture(config.model_cfg),
            format="checkpoint" if weights is not None else "config",
            weights=weights,
            folder=path.parent,
        )
    if weights is not None:
        raise ModelLoadError(name, "give the checkpoint either as the path or as checkpoint=, not both")
    if not (path.parent / CONFIG_FILE).is_file():
        raise ModelLoadError(
            name,
            f"no {CONFIG_FILE} beside {path.name}; name its architecture instead: "
            f"load_model('<architecture>', checkpoint='{path}')",
            f"no {CONFIG_FILE} beside {path.name}: put the architecture's {CONFIG_FILE} there (open_clip's "
            f"model_configs/<architecture>.json wrapped as {{\"model_cfg\": ...}}), then pass the file as --model",
        )
    return hub_folder(path.parent, name, path, None)


def hub_folder(folder: Path, name: str, weights: Path | None, entry: RegistryEntry | None) -> Resolved:
    """An open_clip hub folder; for a registry entry with an architecture, a folder with a bare checkpoint."""
    settings: OpenClipEntry = entry.config if entry is not None else OpenClipEntry()
    config_file = folder / CONFIG_FILE
    try:
        if config_file.is_file():
            config = read_config(config_file, name)
            weights = weights or find_weights(folder, name)
        elif settings.architecture is not None or settings.model_cfg is not None:
            model_cfg = settings.model_cfg or architecture_config(str(settings.architecture))
            config = OpenClipConfig(dict(model_cfg), dict(settings.preprocess), key_renames=dict(settings.key_renames))
            weights = weights or find_weights(folder, name, any_checkpoint=True)
        else:
            raise ModelLoadError(name, f"{folder} has no {CONFIG_FILE} (not an open_clip hub folder)")
    except ModelLoadError as error:
        if entry is None:
            raise
        raise ModelLoadError(name, f"{error.problem}. {download_hint(entry)}") from None
    if settings.model_overrides:
        config = dataclasses.replace(config, model_cfg=merged(config.model_cfg, settings.model_overrides))
    return Resolved(
        family=FAMILY,
        config=config,
        architecture=settings.architecture or describe_architecture(config.model_cfg),
        format="open_clip-hub",
        weights=weights,
        folder=folder,
        hf_repo=entry.hf_repo if entry is not None else None,
    )


def merged(base: dict, overrides: dict) -> dict:
    """``base`` with ``overrides`` applied, nested mappings merged key by key (``{"text_cfg": {...}}`` pins one key)."""
    out = dict(base)
    for key, value in overrides.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def describe_architecture(model_cfg: dict) -> str:
    """The open_clip architecture name whose config is ``model_cfg``, else ``custom:<vision>+<text>``."""
    from openmedclip.models.families.open_clip.catalog import architectures

    for arch in architectures():
        if architecture_config(arch) == model_cfg:
            return arch
    vision = model_cfg["vision_cfg"].get("timm_model_name") or "open_clip-vision"
    text = model_cfg["text_cfg"].get("hf_model_name") or "open_clip-text"
    return f"custom:{vision}+{text}"
