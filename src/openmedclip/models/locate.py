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
        snapshot = cached_snapshot(
            entry.hf_repo, revision=entry.revision, repo_type=entry.repo_type, allow_patterns=entry.files
        )
        if snapshot is not None:
            return snapshot
    raise ModelLoadError(entry.name, "no local copy found. " + download_hint(entry))


def download_hint(entry: RegistryEntry) -> str:
    """How to get ``entry``'s files: ``openmedclip download NAME`` for hub models, or which files to put where."""
    root = os.environ.get(MODELS_ENV)
    where = f"${MODELS_ENV}/{entry.name}/ ({MODELS_ENV} is {root if root else 'not set'})"
    names = [*entry.files, *(name for name in entry.checksums if name not in entry.files)]
    files = ", ".join(names) if names else "its files"
    if entry.hf_repo:
        into = Path(root).expanduser() / entry.name if root else f"the Hugging Face cache {hf_cache_dir()}"
        hint = (
            f"Download it with `openmedclip download {entry.name}` (into {into}), or by hand: get {files} from "
            f"{entry.url} and put them in {where}"
        )
    else:
        hint = f"Download {files} from {entry.url} and put them in {where}"
    for repo in entry.needs:
        hint += (
            f"; it also needs the config and tokenizer files of {hub_url(repo)} in that folder (or its subfolder "
            f"{repo}/) or in the Hugging Face cache"
        )
    if entry.needs and not entry.hf_repo:
        hint += f" (`openmedclip download {entry.name}` fetches those)"
    return hint
