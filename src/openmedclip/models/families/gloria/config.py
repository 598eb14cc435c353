"""The GLoRIA family's typed config: the architecture, fixed by the entry (never read from a checkpoint)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

BIO_CLINICALBERT = "emilyalsentzer/Bio_ClinicalBERT"
CHECKPOINT_FILE = "chexpert_resnet50.ckpt"


@dataclass(frozen=True)
class GloriaConfig:
    """A GLoRIA model: a ResNet with bottleneck blocks (ResNet-50 by default) and a BERT text tower.

    The joint dimension is the BERT hidden size (768 for Bio_ClinicalBERT; there is no text projection). The
    published model is ResNet-50 + Bio_ClinicalBERT at 299 px, last 4 hidden layers summed, 97 tokens.
    """

    bert: str = BIO_CLINICALBERT
    """The Hugging Face text tower whose ``config.json`` and tokenizer files are read offline."""
    bert_config: Mapping[str, Any] | None = None
    """``BertConfig`` fields used instead of reading ``config.json`` (tiny test models)."""
    vocab: tuple[str, ...] = ()
    """Word pieces by id, used instead of reading the tokenizer files (tiny test models)."""
    resnet_layers: tuple[int, int, int, int] = (3, 4, 6, 3)
    """Bottleneck blocks per stage."""
    resnet_planes: tuple[int, int, int, int] = (64, 128, 256, 512)
    """Bottleneck widths per stage (outputs are 4 times these); the stem has ``resnet_planes[0]`` channels."""
    image_size: int = 299
    """The model upsamples its input to this size (bilinear, corners aligned) before the ResNet."""
    context_length: int = 97
    last_layers: int = 4
    """How many of the last BERT hidden states are summed."""
    temperature: float = 10.0
    """The fixed multiplier of cosine similarities (GLoRIA's global contrastive loss used cos × 10)."""
