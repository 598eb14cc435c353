"""Writing a loaded (e.g. fine-tuned) open_clip model as a hub folder that ``load_model`` reads."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from open_clip.hf_model import HFTextEncoder
from safetensors.torch import save

from openmedclip.atomic import write_atomic, write_text
from openmedclip.models.families.open_clip.config import OpenClipConfig
from openmedclip.models.families.open_clip.hub_folder import CONFIG_FILE, WEIGHT_FILES
from openmedclip.models.families.open_clip.native.model import BertTower
from openmedclip.models.loaded import LoadedModel
from openmedclip.models.saved_folder import stored_tensor


def save_hub_folder(
    loaded: LoadedModel,
    folder: str | Path,
    *,
    base_weights: dict[str, str] | None = None,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write ``open_clip_config.json``, ``open_clip_model.safetensors`` and, for a Hugging Face text tower,
    its ``config.json`` and tokenizer files into ``folder`` (created if needed); return the folder.

    ``base_weights`` (default: those the model was loaded with) maps state-dict prefixes of frozen towers to
    where their weights live; keys under those prefixes are not written, and loading takes them from there.
    Pass ``{}`` to write every weight. Floating weights are stored in ``dtype`` (default: as they are, e.g.
    ``torch.float16`` halves the file); ``load_model(folder, precision=...)`` casts them again.
    """
    config: OpenClipConfig = loaded.spec.config
    model_cfg, preprocess_cfg = config.model_cfg, config.preprocess_cfg
    folder = Path(folder).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    if base_weights is None:
        base_weights = config.base_weights
    payload: dict[str, Any] = {"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg}
    if base_weights:
        payload["base_weights"] = dict(base_weights)
    write_text(folder / CONFIG_FILE, json.dumps(payload, indent=2))
    state = {
        key: stored_tensor(value, dtype)
        for key, value in loaded.model.state_dict().items()
        if not key.startswith(tuple(base_weights))
    }
    write_atomic(folder / WEIGHT_FILES[0], lambda handle: handle.write(save(state, metadata={"format": "pt"})))
    text = getattr(loaded.model, "text", None)
    if isinstance(text, HFTextEncoder):
        text.config.save_pretrained(folder)
    elif isinstance(text, BertTower) and text.config_file.resolve() != (folder / "config.json").resolve():
        shutil.copyfile(text.config_file, folder / "config.json")
    if hasattr(loaded.tokenizer, "save_pretrained"):
        loaded.tokenizer.save_pretrained(str(folder))
    return folder

