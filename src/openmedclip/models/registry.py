"""Published models by name: where to download each and how to read it. Pure data; adding a model is an entry.

Naming: a registry name never equals an open_clip architecture name. OpenAI's CLIP weights are
``openai/<architecture>`` (``'openai/ViT-B-16'``), while the plain architecture name (``'ViT-B-16'``)
means that architecture with random weights (or with ``checkpoint=``). Other models have short names
(``'biomedclip'``). A name's files live in ``$OPENMEDCLIP_MODELS/<name>/`` (``openai/ViT-B-16`` is a
sub-folder) or in the Hugging Face cache of ``hf_repo``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from openmedclip.models.hf_local import hub_url

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class RegistryEntry:
    """One published model."""

    name: str
    hf_repo: str
    """Hugging Face hub repository holding the files."""
    format: str
    """How its folder is read (a loader in ``openmedclip.models.load``); ``'open_clip-hub'`` for now."""
    description: str
    architecture: str | None = None
    """open_clip architecture used when the folder has no ``open_clip_config.json`` (a bare checkpoint)."""
    model_overrides: dict[str, Any] = field(default_factory=dict)
    """Merged into the model config whatever its source (e.g. QuickGELU for OpenAI's weights)."""
    preprocess: dict[str, Any] = field(default_factory=dict)
    """Preprocess config used when the folder has no ``open_clip_config.json``."""
    needs: tuple[str, ...] = ()
    """Other hub repositories whose files it needs when they are not in its folder."""
    bundled: str | None = None
    """``package:<python package>/<folder>`` for models shipped inside an installed package (no download)."""

    @property
    def url(self) -> str:
        """Where to download it."""
        return hub_url(self.hf_repo)


def _openai(architecture: str, hf_repo: str) -> RegistryEntry:
    return RegistryEntry(
        name=f"openai/{architecture}",
        hf_repo=hf_repo,
        format="open_clip-hub",
        description=f"OpenAI CLIP {architecture} (open_clip's 'openai' weights, safetensors form)",
        architecture=architecture,
        model_overrides={"quick_gelu": True},
        preprocess={"mean": OPENAI_MEAN, "std": OPENAI_STD, "interpolation": "bicubic", "resize_mode": "shortest"},
    )


ENTRIES: tuple[RegistryEntry, ...] = (
    RegistryEntry(
        name="openmedclip-base",
        hf_repo="",
        format="open_clip-hub",
        description="openmedclip's built-in small CLIP (ResNet-10-T 64 px + frozen MiniLM), ships with the package",
        bundled="package:openmedclip/builtin/openmedclip-base",
    ),
    RegistryEntry(
        name="biomedclip",
        hf_repo="microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224",
        format="open_clip-hub",
        description="BiomedCLIP: ViT-B/16 + PubMedBERT, trained on PMC-15M figure-caption pairs",
        needs=("microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract",),
    ),
    _openai("ViT-B-32", "timm/vit_base_patch32_clip_224.openai"),
    _openai("ViT-B-16", "timm/vit_base_patch16_clip_224.openai"),
    _openai("ViT-L-14", "timm/vit_large_patch14_clip_224.openai"),
    _openai("ViT-L-14-336", "timm/vit_large_patch14_clip_336.openai"),
    _openai("RN50", "timm/resnet50_clip.openai"),
    _openai("RN101", "timm/resnet101_clip.openai"),
)

REGISTRY: dict[str, RegistryEntry] = {entry.name: entry for entry in ENTRIES}

DEFAULT_MODEL = "openmedclip-base"
"""The model used when none is named (e.g. by the CLI)."""
