"""Finding a BioViL model's files: the image checkpoint and the CXR-BERT files, side by side in one folder (the
layout of the Hugging Face repositories that publish them)."""

from __future__ import annotations

from pathlib import Path

from openmedclip.errors import ModelLoadError
from openmedclip.models.families.biovil.config import (
    IMAGE_FILES,
    TEXT_FILES,
    TEXT_WEIGHT_FILES,
    BiovilConfig,
    BiovilEntry,
)
from openmedclip.models.families.biovil.text import read_text_config
from openmedclip.models.family import Resolved
from openmedclip.models.locate import download_hint, registry_folder
from openmedclip.models.registry import RegistryEntry

FAMILY = "biovil"
FOLDER_FORMAT = "hi-ml"
"""The published layout: image state dict + CXR-BERT ``pytorch_model.bin`` in one folder."""


def needed_files(entry: RegistryEntry) -> str:
    """The files an entry needs, for messages."""
    settings: BiovilEntry = entry.config
    return ", ".join((settings.image_file, *TEXT_FILES, " or ".join(reversed(TEXT_WEIGHT_FILES))))


def missing_message(entry: RegistryEntry) -> str:
    """Which files are needed, where to get them and where to put them."""
    return f"it needs {needed_files(entry)}. {download_hint(entry)}"


def resolve_entry(entry: RegistryEntry, checkpoint: Path | None) -> Resolved:
    """A registry entry's folder, read with the entry's image settings."""
    folder = registry_folder(entry)
    try:
        return resolve_folder(folder, entry.config, entry.name, checkpoint)
    except ModelLoadError as error:
        raise ModelLoadError(entry.name, f"{error.problem}; {missing_message(entry)}") from None


def image_variant(path: Path) -> str | None:
    """The variant whose published image checkpoint ``path`` is or holds, if any."""
    for variant, file_name in IMAGE_FILES.items():
        if (path.name == file_name and path.is_file()) or (path / file_name).is_file():
            return variant
    return None


def resolve_folder(folder: Path, settings: BiovilEntry, name: str, checkpoint: Path | None) -> Resolved:
    """A folder with the published files; ``checkpoint`` (our own combined state dict) replaces their weights."""
    image_file = folder / settings.image_file
    if checkpoint is None and not image_file.is_file():
        raise ModelLoadError(name, f"{image_file} not found")
    if not (folder / "config.json").is_file():
        raise ModelLoadError(name, f"{folder / 'config.json'} (the CXR-BERT config) not found")
    if checkpoint is None:
        text_weights(folder, name)
    config = BiovilConfig(settings.image, read_text_config(folder, name))
    return Resolved(
        family=FAMILY,
        config=config,
        architecture=settings.image.variant,
        format="checkpoint" if checkpoint is not None else FOLDER_FORMAT,
        weights=checkpoint if checkpoint is not None else image_file,
        folder=folder,
    )


def text_weights(folder: Path, name: str) -> Path:
    """The CXR-BERT weights file of ``folder``."""
    for file_name in TEXT_WEIGHT_FILES:
        if (folder / file_name).is_file():
            return folder / file_name
    raise ModelLoadError(name, f"no CXR-BERT weights ({' or '.join(TEXT_WEIGHT_FILES)}) in {folder}")
