"""The open_clip hub folder format: ``open_clip_config.json`` plus a weights file (BiomedCLIP's layout)."""

from __future__ import annotations

from pathlib import Path

from openmedclip.errors import ModelLoadError
from openmedclip.models.checkpoint import CHECKPOINT_SUFFIXES
from openmedclip.models.families.open_clip.config import OpenClipConfig
from openmedclip.models.families.open_clip.config_file import read_hub_config

CONFIG_FILE = "open_clip_config.json"
WEIGHT_FILES = (
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.safetensors",
    "open_clip_pytorch_model.bin",
    "open_clip_pytorch_model.pth",
)
"""Weight file names of the hub format, preferred first."""


def read_config(path: Path, model: str) -> OpenClipConfig:
    """The model, preprocess and base-weight settings of an ``open_clip_config.json``, checked against its schema
    (:mod:`openmedclip.models.families.open_clip.config_file`); ``ModelLoadError`` naming the file, the place and
    the problem otherwise."""
    config = read_hub_config(path, model)
    return OpenClipConfig(config.model_cfg_dict(), config.preprocess_dict(), config.base_weights_dict())


def find_weights(folder: Path, model: str, *, any_checkpoint: bool = False) -> Path:
    """The weights file in ``folder``: a hub-format name, or (``any_checkpoint``) its only checkpoint file."""
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name
    others = sorted(path for path in folder.iterdir() if path.suffix.lower() in CHECKPOINT_SUFFIXES)
    if any_checkpoint and len(others) == 1:
        return others[0]
    found = f"; found {', '.join(path.name for path in others)}" if others else ""
    raise ModelLoadError(
        model, f"no weights file in {folder} (expected {' or '.join(WEIGHT_FILES[:3])}){found}"
    )
