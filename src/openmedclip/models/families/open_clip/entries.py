"""The open_clip family's registry entries: the built-in model, BiomedCLIP and OpenAI's CLIP weights."""

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
            preprocess={
                "mean": OPENAI_MEAN, "std": OPENAI_STD, "interpolation": "bicubic", "resize_mode": "shortest",
            },
        ),
    )


ENTRIES: tuple[RegistryEntry, ...] = (
    RegistryEntry(
        name="openmedclip-base",
        family="open_clip",
        hf_repo="",
        description="openmedclip's built-in small CLIP (ResNet-10-T 64 px + frozen MiniLM), ships with the package",
        config=OpenClipEntry(),
        bundled="package:openmedclip/builtin/openmedclip-base",
    ),
    RegistryEntry(
        name="biomedclip",
        family="open_clip",
        hf_repo="microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224",
        description="BiomedCLIP: ViT-B/16 + PubMedBERT, trained on PMC-15M figure-caption pairs",
        config=OpenClipEntry(),
        needs=("microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract",),
    ),
    _openai("ViT-B-32", "timm/vit_base_patch32_clip_224.openai"),
    _openai("ViT-B-16", "timm/vit_base_patch16_clip_224.openai"),
    _openai("ViT-L-14", "timm/vit_large_patch14_clip_224.openai"),
    _openai("ViT-L-14-336", "timm/vit_large_patch14_clip_336.openai"),
    _openai("RN50", "timm/resnet50_clip.openai"),
    _openai("RN101", "timm/resnet101_clip.openai"),
)

for _entry in ENTRIES:
    register_model(_entry, replace=True)
