"""The open_clip hub folder format: ``open_clip_config.json`` plus a weights file (BiomedCLIP's layout)."""

from __future__ import annotations

import json
from pathlib import Path

from openmedclip.errors import ModelLoadError
from openmedclip.models.checkpoint import CHECKPOINT_SUFFIXES
from openmedclip.models.families.open_clip.config import OpenClipConfig

CONFIG_FILE = "open_clip_config.json"
WEIGHT_FILES = (
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.safetensors",
    "open_clip_pytorch_model.bin",
    "open_clip_pytorch_model.pth",
)
"""Weight file names of the hub format, preferred first."""


def read_config(path: Path, model: str) -> OpenClipConfig:
    """The model, preprocess and base-weight settings of an ``open_clip_config.json``; ``ModelLoadError`` naming
    the file if it is malformed."""
    try:
        content = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise ModelLoadError(model, f"cannot read {path}: {error}") from None
    except ValueError as error:
        raise ModelLoadError(model, f"{path} is not valid JSON: {error}") from None
    if not isinstance(content, dict) or not isinstance(content.get("model_cfg"), dict):
        raise ModelLoadError(model, f"{path} has no 'model_cfg' object (the open_clip hub config format)")
    model_cfg = content["model_cfg"]
    absent = [key for key in ("embed_dim", "vision_cfg", "text_cfg") if key not in model_cfg]
    if absent:
        raise ModelLoadError(model, f"{path}: 'model_cfg' lacks {', '.join(absent)}")
    preprocess_cfg = content.get("preprocess_cfg", {})
    if not isinstance(preprocess_cfg, dict):
        raise ModelLoadError(model, f"{path}: 'preprocess_cfg' must be an object")
    base_weights = content.get("base_weights", {})
    if not isinstance(base_weights, dict) or not all(isinstance(v, str) for v in base_weights.values()):
        raise ModelLoadError(model, f"{path}: 'base_weights' must map state-dict prefixes to locations")
    return OpenClipConfig(model_cfg, preprocess_cfg, base_weights)


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
