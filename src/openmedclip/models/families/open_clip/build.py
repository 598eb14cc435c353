"""Building an open_clip model, its image transform and its tokenizer from a config, offline.

Mirrors what ``open_clip.create_model`` does with a config, except that nothing is downloaded:
timm towers are built without pretrained weights, Hugging Face text towers from a local ``config.json``
and tokenizers from local files (see :mod:`openmedclip.models.hf_local`); weights come from our checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from copy import deepcopy
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from open_clip.coca_model import CoCa
from open_clip.model import CLIP, CustomTextCLIP, set_model_preprocess_cfg
from open_clip.tokenizer import DEFAULT_CONTEXT_LENGTH, HFTokenizer, SimpleTokenizer
from open_clip.transform import PreprocessCfg, image_transform_v2, merge_preprocess_dict

from openmedclip.errors import ModelLoadError
from openmedclip.models.families.open_clip.preprocess import OpenClipPreprocess
from openmedclip.models.hf_local import text_config_dir, tokenizer_dir

BUILD_ERRORS = (TypeError, ValueError, RuntimeError, KeyError, AssertionError, OSError)


def build_model(model_cfg: dict, *, folder: Path | None, name: str) -> torch.nn.Module:
    """A randomly initialised CLIP/CustomTextCLIP/CoCa for ``model_cfg`` (HF text config looked up offline)."""
    cfg = deepcopy(model_cfg)
    vision, text = cfg.pop("vision_cfg"), cfg.pop("text_cfg")
    output_stride = vision.pop("timm_output_stride", None)
    if vision.get("timm_model_name"):
        vision["timm_model_pretrained"] = False
    if text.get("hf_model_name"):
        text["hf_model_name"] = str(text_config_dir(text["hf_model_name"], folder, name))
        text["hf_model_pretrained"] = False
    custom_text = bool(cfg.pop("custom_text", False)) or bool(text.get("hf_model_name"))
    model_class = (CoCa if "multimodal_cfg" in cfg else CustomTextCLIP) if custom_text else CLIP
    try:
        model = model_class(**cfg, vision_cfg=vision, text_cfg=text)
        if output_stride is not None:
            model.visual.trunk = _timm_trunk(vision, output_stride)
    except BUILD_ERRORS as error:
        raise ModelLoadError(name, f"cannot build the architecture from its config: {error}") from None
    return model


def _timm_trunk(vision: dict, output_stride: int) -> torch.nn.Module:
    """The timm trunk open_clip's ``TimmModel`` builds for ``vision`` (a linear or MLP projection head after
    pooling), built with ``output_stride`` instead (timm's dilated last stages; the same weights and key names).
    ``timm_output_stride`` is an openmedclip extension of the vision config."""
    import timm

    pool = vision.get("timm_pool", "avg")
    projected = vision.get("timm_proj", "linear") in ("linear", "mlp") and pool not in ("abs_attn", "rot_attn")
    if not vision.get("timm_model_name") or not projected:
        raise ValueError("timm_output_stride needs a timm image tower with a linear or mlp projection after pooling")
    extra = {} if vision.get("timm_drop_path") is None else {"drop_path_rate": vision["timm_drop_path"]}
    trunk: Any = timm.create_model(vision["timm_model_name"], pretrained=False, output_stride=output_stride, **extra)
    trunk.reset_classifier(0, **({"global_pool": pool} if pool else {}))
    return trunk


def build_preprocess(model: torch.nn.Module, preprocess_cfg: dict) -> tuple[OpenClipPreprocess, dict]:
    """The inference preprocess (``MedicalImage`` -> ``[3, H, W]``) and the full preprocess config it uses.

    Unset fields take open_clip's defaults; the size always follows the model's image tower.
    Sequences are lists, as after a JSON round trip.
    """
    merged = merge_preprocess_dict(asdict(PreprocessCfg()), preprocess_cfg)
    image_size = getattr(getattr(model, "visual", None), "image_size", None)
    if image_size is not None:
        merged["size"] = image_size
    merged = {key: list(value) if isinstance(value, tuple) else value for key, value in merged.items()}
    set_model_preprocess_cfg(model, merged)
    return OpenClipPreprocess(image_transform_v2(PreprocessCfg(**merged), is_train=False), merged), merged


def build_tokenizer(
    model_cfg: dict, *, folder: Path | None, name: str
) -> tuple[Callable[[list[str]], torch.Tensor], int]:
    """The tokenizer (texts -> ``[N, context_length]`` LongTensor) and its context length.

    A Hugging Face tokenizer is loaded with ``AutoTokenizer.from_pretrained`` on its local folder; other
    text towers use open_clip's BPE tokenizer.
    """
    text = model_cfg["text_cfg"]
    context_length = int(text.get("context_length", DEFAULT_CONTEXT_LENGTH))
    kwargs = dict(text.get("tokenizer_kwargs") or {})
    if not text.get("hf_tokenizer_name"):
        return SimpleTokenizer(context_length=context_length, **kwargs), context_length
    source = tokenizer_dir(text["hf_tokenizer_name"], folder, name)
    try:
        tokenizer = HFTokenizer(
            str(source), context_length=context_length, tokenizer_mode=text.get("tokenizer_mode"), **kwargs
        )
    except BUILD_ERRORS as error:
        raise ModelLoadError(name, f"cannot load the tokenizer from {source}: {error}") from None
    return tokenizer, context_length


def text_pad_id(model: torch.nn.Module) -> int | None:
    """The pad id that token batches may be trimmed of: a Hugging Face text tower's (which masks it) when its
    pooler reads only unmasked positions (CLS or masked mean; open_clip's max pooler fills the *unmasked* positions,
    so it reads padding). None for open_clip's own text transformer, which adds its full-context positional
    embedding and causal mask whatever the input length, and for anything else."""
    from open_clip.hf_model import ClsLastHiddenStatePooler, ClsPooler, HFTextEncoder, MeanPooler

    text = getattr(model, "text", None)
    poolers = (ClsPooler, ClsLastHiddenStatePooler, MeanPooler)
    if not isinstance(text, HFTextEncoder) or type(text.pooler) not in poolers:
        return None
    pad = getattr(text.config, "pad_token_id", None)
    return None if pad is None else int(pad)
