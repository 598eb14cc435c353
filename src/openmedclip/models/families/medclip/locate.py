"""Where a MedCLIP model's files are: a registry entry's folder, or a ``pytorch_model.bin`` (or its folder)."""

from __future__ import annotations

import zipfile
from pathlib import Path

from openmedclip.errors import ModelLoadError
from openmedclip.models.families.medclip.config import WEIGHTS_FILE, MedclipConfig
from openmedclip.models.family import Resolved
from openmedclip.models.locate import download_hint, registry_folder
from openmedclip.models.registry import RegistryEntry

MARKERS = (b"vision_model.model.", b"text_model.projection_head")
"""Key names every MedCLIP state dict holds (read from the pickle's text, never unpickled here)."""
RESNET_MARKER = b"vision_model.model.layer4."


def resolve_entry(entry: RegistryEntry, checkpoint: Path | None, family: str) -> Resolved:
    """The config and files of a registry entry (``checkpoint`` replaces its weights)."""
    try:
        folder: Path | None = registry_folder(entry)
    except ModelLoadError:
        if checkpoint is None:
            raise ModelLoadError(entry.name, f"no local copy found; it needs {WEIGHTS_FILE} from MedCLIP's zip "
                                 "archive. " + download_hint(entry)) from None
        folder = None
    weights = checkpoint
    if weights is None:
        assert folder is not None
        weights = folder / WEIGHTS_FILE
        if not weights.is_file():
            raise ModelLoadError(entry.name, f"{folder} has no {WEIGHTS_FILE}. " + download_hint(entry))
    return Resolved(family, entry.config, entry.name, "checkpoint", weights, folder)


def weights_in(path: Path) -> Path | None:
    """The MedCLIP state dict at ``path`` (the file, or ``pytorch_model.bin`` in the folder), if it is one."""
    file = path / WEIGHTS_FILE if path.is_dir() else path
    return file if file.is_file() and all(marker in _pickle_text(file) for marker in MARKERS) else None


def resolve_path(path: Path, checkpoint: Path | None, family: str) -> Resolved:
    """A ``pytorch_model.bin`` or its folder: the published architecture its keys show (ResNet-50 or Swin-T)."""
    found = weights_in(path)
    if found is None:
        raise ModelLoadError(str(path), f"not a MedCLIP checkpoint ({WEIGHTS_FILE} of MedCLIPModel)")
    config = MedclipConfig(vision="resnet" if RESNET_MARKER in _pickle_text(found) else "swin")
    return Resolved(family, config, f"medclip-{config.vision}", "checkpoint", checkpoint or found, found.parent)


def _pickle_text(file: Path) -> bytes:
    """The pickle of a ``torch.save`` zip (key names and tensor metadata, no tensor data); b'' otherwise."""
    try:
        with zipfile.ZipFile(file) as archive:
            name = next((n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"), None)
            return archive.read(name) if name else b""
    except (OSError, zipfile.BadZipFile):
        return b""
