"""The open_clip family's registry entries: the built-in model, BiomedCLIP, OpenAI's CLIP weights and UniMed-CLIP."""

from __future__ import annotations

from openmedclip.models.families.open_clip.config import OpenClipEntry
from openmedclip.models.registry import RegistryEntry, register_model

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


def _openai(architecture: str, hf_repo: str) -> RegistryEntry:
    return RegistryEntry(
        name=f"openai/{architecture}",
        family="open_clip",
        hf_repo=hf_repo,
        description=f"OpenAI CLIP {architecture} (open_clip's 'openai' weights, safetensors form)",
        config=OpenClipEntry(
            architecture=architecture,
            model_overrides={"quick_gelu": True},
            preprocess=OPENAI_PREPROCESS,
        ),
        files=("open_clip_config.json", "open_clip_model.safetensors"),
        licence="MIT",
    )


OPENAI_PREPROCESS = {"mean": OPENAI_MEAN, "std": OPENAI_STD, "interpolation": "bicubic", "resize_mode": "shortest"}
BIOMEDBERT = "microsoft/BiomedNLP-BiomedBERT-{}-uncased-abstract"
UNIMED_LICENCE = "CC BY-NC 4.0 (non-commercial use only)"


def _unimed(name: str, hf_repo: str, vision: dict, embed_dim: int, text_size: str, description: str) -> RegistryEntry:
    """UniMed-CLIP: a training checkpoint (``state_dict`` with ``module.`` keys, numpy scalars beside it) of an
    OpenAI-layout ViT (QuickGELU) and a BiomedBERT text tower stored under ``text_encoder.``."""
    text = BIOMEDBERT.format(text_size)
    model_cfg = {
        "embed_dim": embed_dim,
        "quick_gelu": True,
        "vision_cfg": vision,
        "text_cfg": {
            "hf_model_name": text,
            "hf_tokenizer_name": text,
            "hf_proj_type": "mlp",
            "hf_pooler_type": "cls_last_hidden_state_pooler",
            "context_length": 256,
        },
    }
    return RegistryEntry(
        name=name,
        family="open_clip",
        hf_repo=hf_repo,
        description=description,
        config=OpenClipEntry(model_cfg=model_cfg, preprocess=OPENAI_PREPROCESS, key_renames={"text_encoder.": "text."}),
        needs=(text,),
        licence=UNIMED_LICENCE,
    )


VIT_B16 = {"image_size": 224, "layers": 12, "width": 768, "patch_size": 16}
VIT_L14_336 = {"image_size": 336, "layers": 24, "width": 1024, "patch_size": 14}

ENTRIES: tuple[RegistryEntry, ...] = (
    RegistryEntry(
        name="openmedclip-base",
        family="open_clip",
        hf_repo="",
        description="openmedclip's built-in small CLIP (ResNet-10-T at 128 px + frozen MiniLM), ships with the package",
        config=OpenClipEntry(),
        bundled="package:openmedclip/builtin/openmedclip-base",
        licence="Apache-2.0 (research and demonstration, not diagnosis)",
    ),
    RegistryEntry(
        name="biomedclip",
        family="open_clip",
        hf_repo="microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224",
        description="BiomedCLIP: ViT-B/16 + PubMedBERT, trained on PMC-15M figure-caption pairs",
        # Configs before April 2023 said `cls_pooler` (a BERT pooler the weights do not have): pin the current one.
        config=OpenClipEntry(model_overrides={"text_cfg": {"hf_pooler_type": "cls_last_hidden_state_pooler"}}),
        needs=("microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract",),
        prompts="photo_of",
        licence="MIT (research use only)",
    ),
    _openai("ViT-B-32", "timm/vit_base_patch32_clip_224.openai"),
    _openai("ViT-B-16", "timm/vit_base_patch16_clip_224.openai"),
    _openai("ViT-L-14", "timm/vit_large_patch14_clip_224.openai"),
    _openai("ViT-L-14-336", "timm/vit_large_patch14_clip_336.openai"),
    _openai("RN50", "timm/resnet50_clip.openai"),
    _openai("RN101", "timm/resnet101_clip.openai"),
    _unimed("unimed/vit-b16", "UzairK/unimed-clip-vit-b16", VIT_B16, 512, "base",
            "UniMed-CLIP ViT-B/16 + BiomedBERT-base, trained on 5.3M medical image-text pairs"),
    _unimed("unimed/vit-l14-base-text", "UzairK/unimed_clip_vit_l14_base_text_encoder", VIT_L14_336, 768, "base",
            "UniMed-CLIP ViT-L/14 (336 px) + BiomedBERT-base"),
    _unimed("unimed/vit-l14-large-text", "UzairK/unimed_clip_vit_l14_large_text_encoder", VIT_L14_336, 768, "large",
            "UniMed-CLIP ViT-L/14 (336 px) + BiomedBERT-large"),
)

for _entry in ENTRIES:
    register_model(_entry, replace=True)
