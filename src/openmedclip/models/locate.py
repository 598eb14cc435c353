"""Finding the local folder of a registry model: ``$OPENMEDCLIP_MODELS/<name>/``, then the Hugging Face cache."""

from __future__ import annotations

import os
from pathlib import Path

from openmedclip.errors import ModelLoadError
from openmedclip.models.hf_local import (
    cached_snapshot,
    hf_cache_dir,
    hub_url,
    package_path,
)
from openmedclip.models.registry import RegistryEntry

MODELS_ENV = "OPENMEDCLIP_MODELS"


def registry_folder(entry: RegistryEntry) -> Path:
    """The folder holding ``entry``'s files; ``ModelLoadError`` saying where to get them when there is none."""
    if entry.bundled:
        folder = package_path(entry.bundled)
        if folder is None or not folder.is_dir():
            raise ModelLoadError(entry.name, f"its files ({entry.bundled}) are missing; reinstall openmedclip")
        return folder
    root = os.environ.get(MODELS_ENV)
    if root:
        folder = Path(root).expanduser() / entry.name
        if folder.is_dir():
            return folder
    if entry.hf_repo:
        snapshot = cached_snapshot(entry.hf_repo, revision=entry.revision, repo_type=entry.repo_type)
        if snapshot is not None:
            return snapshot
    raise ModelLoadError(entry.name, "no local copy found. " + download_hint(entry))


def download_hint(entry: RegistryEntry) -> str:
    """Where to download ``entry`` and where to put the files."""
    root = os.environ.get(MODELS_ENV)
    where = f"${MODELS_ENV}/{entry.name}/ ({MODELS_ENV} is {root if root else 'not set'})"
    if entry.hf_repo:
        hint = (
            f"Download it from {entry.url} (e.g. `hf download {entry.hf_repo}`, which fills the Hugging Face cache "
            f"{hf_cache_dir()}), or put its files in {where}"
        )
    else:
        hint = f"Download it from {entry.url} and put its files in {where}"
    for repo in entry.needs:
        hint += f"; it also needs files from {hub_url(repo)} in that folder or in the cache"
    return hint
