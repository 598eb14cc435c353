"""PMC-CLIP's typed config (the sizes of its two towers, where its text tower's files come from) and the names of
its published files."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

TEXT_REPO = "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract-fulltext"
"""The text tower's hub repository (formerly ``microsoft/BiomedNLP-PubMedBERT-base-uncased-abstract-fulltext``,
the name PMC-CLIP's code uses; both names are looked up)."""

CHECKPOINT = "checkpoint.pt"
"""The training checkpoint."""
COMPONENT_FILES = ("image_encoder(resnet50).pth", "text_encoder.pth", "text_projection_layer.pth")
"""The extracted components: image tower state dict, text tower state dict, bare text projection tensor."""


@dataclass(frozen=True)
class PmcClipConfig:
    """Architecture of a PMC-CLIP model; the defaults are the published model's.

    Nothing here is in the checkpoint's key names or shapes alone: the attention-pool head count (32) and the
    text tower's [CLS] pooling without attention mask come from PMC-CLIP's code.
    """

    embed_dim: int = 768
    image_size: int = 224
    vision_layers: tuple[int, int, int, int] = (3, 4, 6, 3)
    vision_width: int = 64
    vision_heads: int = 32
    """Attention-pool heads: ``width * 32 // 64`` in PMC-CLIP's code (2048 / 64)."""
    text_model: str = TEXT_REPO
    """Hub name (or folder) of the text tower's ``config.json`` and tokenizer files."""
    context_length: int = 77
    cls_token_id: int = 2
    """The [CLS] id in PubMedBERT's vocabulary, whose position gives the text feature."""
    text_config: Mapping[str, Any] | None = None
    """An inline BERT config instead of ``text_model``'s ``config.json`` (tiny example models)."""
    vocab: tuple[str, ...] = ()
    """An inline WordPiece vocabulary instead of ``text_model``'s ``vocab.txt`` (tiny example models)."""
