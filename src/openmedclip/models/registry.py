"""Published models by name: which family reads each, its typed config, and where to download it.

An entry is pure data (like timm's ``pretrained_cfg``): ``family`` names a registered
:class:`~openmedclip.models.family.ModelFamily` and ``config`` is that family's typed entry config. Families add
their built-in entries on import; anyone can add more with :func:`register_model`.

Naming: a registry name never equals an architecture name. OpenAI's CLIP weights are ``openai/<architecture>``
(``'openai/ViT-B-16'``), while the plain architecture name (``'ViT-B-16'``) means that architecture with random
weights (or with ``checkpoint=``). A name's files live in ``$OPENMEDCLIP_MODELS/<name>/`` or in the Hugging Face
cache of ``hf_repo``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class RegistryEntry:
    """One published model."""

    name: str
    family: str
    """The registered model family that reads its files."""
    hf_repo: str
    """Hugging Face hub repository holding the files ('' for bundled models)."""
    description: str
    config: Any = None
    """The family's typed entry config (e.g. the open_clip family's ``OpenClipEntry``)."""
    needs: tuple[str, ...] = ()
    """Other hub repositories whose files it needs when they are not in its folder."""
    bundled: str | None = None
    """``package:<python package>/<folder>`` for models shipped inside an installed package (no download)."""
    prompts: str = ""
    """The recommended prompts: a template-set or sentence-bank name (see :mod:`openmedclip.prompts`), '' for none."""
    licence: str = ""
    """The licence of the weights (shown with the model; e.g. ``CC BY-NC 4.0``: non-commercial use only)."""
    download_url: str = ""
    """Where to download it when it is not on the Hugging Face hub."""
    revision: str | None = None
    """The hub revision (branch, tag or commit) its files are published at; None: the default branch."""
    repo_type: Literal["model", "dataset"] = "model"
    """Hub repository type (some checkpoints are published in dataset repositories)."""
    files: tuple[str, ...] = ()
    """The files (glob patterns) of ``hf_repo`` it needs; empty: the whole repository."""
    checksums: Mapping[str, str] = field(default_factory=dict)
    """Published checksums by file name, ``'md5:<hex>'`` or ``'sha256:<hex>'``, checked after a download."""

    @property
    def url(self) -> str:
        """Where to download it."""
        if self.download_url:
            return self.download_url
        kind = "datasets/" if self.repo_type == "dataset" else ""
        tree = f"/tree/{self.revision}" if self.revision else ""
        return f"https://huggingface.co/{kind}{self.hf_repo}{tree}"


REGISTRY: dict[str, RegistryEntry] = {}
"""Every registered entry by name (built-in ones appear once the families are loaded)."""

DEFAULT_MODEL = "openmedclip-base"
"""The model used when none is named (e.g. by the CLI)."""


def register_model(entry: RegistryEntry, *, replace: bool = False) -> RegistryEntry:
    """Add ``entry`` to the registry; an existing name needs ``replace=True``."""
    if entry.name in REGISTRY and not replace:
        raise ValueError(f"model name {entry.name!r} is already registered (pass replace=True to override)")
    REGISTRY[entry.name] = entry
    return entry


def registry() -> dict[str, RegistryEntry]:
    """The registry with the built-in families' entries loaded."""
    from openmedclip.models.families import load_builtin_families

    load_builtin_families()
    return REGISTRY
