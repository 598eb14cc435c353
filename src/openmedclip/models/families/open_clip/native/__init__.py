"""The open_clip models openmedclip runs on plain torch: a timm ResNet image tower with average pooling and a linear
projection, a BERT text tower with a mean or CLS pooler and a linear projection (the built-in model's recipe).

Importing open_clip, timm and transformers costs seconds before the first image; these modules keep open_clip's
module tree and state-dict keys and reproduce its forward pass, tokenizer and transform, so inference with such a
model starts in about the time torch takes to import. :func:`applies` says whether a resolved model is covered:
its config is, its tokenizer has a ``tokenizer.json``, and its weights come from files (random initialisation is
left to the libraries, whose initial values these modules do not reproduce). Training and tower locking use the
library classes (``load_model(..., runtime="library")``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from openmedclip.models.families.open_clip.native import preprocess, tokenizer

if TYPE_CHECKING:
    from openmedclip.models.families.open_clip.config import OpenClipConfig
    from openmedclip.models.families.open_clip.native.bert import BertShape
    from openmedclip.models.families.open_clip.native.model import NativeClip
    from openmedclip.models.families.open_clip.native.preprocess import NativePreprocess
    from openmedclip.models.families.open_clip.native.tokenizer import NativeBertTokenizer
    from openmedclip.models.family import Resolved

MODEL_KEYS = frozenset({"embed_dim", "vision_cfg", "text_cfg", "custom_text", "init_logit_bias"})
VISION_KEYS = frozenset({"timm_model_name", "timm_model_pretrained", "timm_pool", "timm_proj", "timm_proj_bias",
                         "image_size", "timm_output_stride"})
TEXT_KEYS = frozenset({"hf_model_name", "hf_model_pretrained", "hf_tokenizer_name", "hf_proj_type", "hf_pooler_type",
                       "context_length"})
PREPROCESS_KEYS = ("size", "mode", "mean", "std", "interpolation", "resize_mode", "fill_color")
"""open_clip's preprocess fields, in its order; a config must name them all."""


def applies(resolved: Resolved, name: str) -> bool:
    """Whether ``resolved`` (an open_clip model) runs on the plain-torch modules."""
    from openmedclip.errors import ModelLoadError
    from openmedclip.models.families.open_clip.native.model import POOLERS
    from openmedclip.models.families.open_clip.native.resnet import RESNETS
    from openmedclip.models.hf_local import text_config_dir, tokenizer_dir

    config: OpenClipConfig = resolved.config
    cfg = config.model_cfg
    vision, text = cfg.get("vision_cfg") or {}, cfg.get("text_cfg") or {}
    shaped = (
        set(cfg) <= MODEL_KEYS
        and set(vision) <= VISION_KEYS
        and set(text) <= TEXT_KEYS
        and vision.get("timm_model_name") in RESNETS
        and vision.get("timm_pool") == "avg"
        and vision.get("timm_proj") == "linear"
        and text.get("hf_proj_type") == "linear"
        and text.get("hf_pooler_type") in POOLERS
        and bool(text.get("hf_tokenizer_name"))
        and set(config.preprocess_cfg) == set(PREPROCESS_KEYS)
        and preprocess.supports(config.preprocess_cfg)
        and resolved.weights is not None
        and not config.key_renames
    )
    if not shaped:
        return False
    try:
        text_config = _bert_config(text_config_dir(text["hf_model_name"], resolved.folder, name))
        words = tokenizer_dir(text["hf_tokenizer_name"], resolved.folder, name)
    except (ModelLoadError, OSError, ValueError):
        return False
    return text_config is not None and tokenizer.supports(words, text)


def _bert_config(folder: Path) -> BertShape | None:
    from openmedclip.models.families.open_clip.native.bert import BertShape

    return BertShape.from_config(json.loads((folder / "config.json").read_text(encoding="utf-8")))


def build_model(resolved: Resolved, name: str) -> NativeClip:
    """The plain-torch model for ``resolved`` (which :func:`applies` accepted), weights not yet loaded."""
    from openmedclip.models.families.open_clip.native.model import BertTower, NativeClip, ResNetTower
    from openmedclip.models.families.open_clip.native.resnet import RESNETS
    from openmedclip.models.hf_local import text_config_dir

    config: OpenClipConfig = resolved.config
    cfg = config.model_cfg
    vision, text = cfg["vision_cfg"], cfg["text_cfg"]
    embed_dim = int(cfg["embed_dim"])
    visual = ResNetTower(RESNETS[vision["timm_model_name"]], embed_dim, vision.get("image_size", 224),
                         bool(vision.get("timm_proj_bias", False)), int(vision.get("timm_output_stride") or 32))
    config_file = text_config_dir(text["hf_model_name"], resolved.folder, name) / "config.json"
    shape = _bert_config(config_file.parent)
    if shape is None:
        raise ValueError(f"{config_file} is not a BERT encoder config (build_model needs what applies() accepted)")
    text_tower = BertTower(shape, embed_dim, text["hf_pooler_type"], config_file)
    return NativeClip(visual, text_tower, cfg.get("init_logit_bias"))


def build_preprocess(model: NativeClip, preprocess_cfg: dict[str, Any]) -> tuple[NativePreprocess, dict[str, Any]]:
    """The transform and the complete preprocess config (size from the image tower, sequences as lists)."""
    from openmedclip.models.families.open_clip.native.preprocess import NativePreprocess

    merged = {key: preprocess_cfg[key] for key in PREPROCESS_KEYS}
    merged = {key: list(value) if isinstance(value, tuple) else value for key, value in merged.items()}
    merged["size"] = list(model.visual.image_size)
    model.visual.preprocess_cfg = merged
    return NativePreprocess(merged), merged


def build_tokenizer(resolved: Resolved, name: str) -> tuple[NativeBertTokenizer, int]:
    """The tokenizer and its context length."""
    from openmedclip.models.families.open_clip.native.tokenizer import NativeBertTokenizer
    from openmedclip.models.hf_local import tokenizer_dir

    text = resolved.config.model_cfg["text_cfg"]
    context_length = int(text.get("context_length", 77))
    return NativeBertTokenizer(tokenizer_dir(text["hf_tokenizer_name"], resolved.folder, name), context_length), \
        context_length
