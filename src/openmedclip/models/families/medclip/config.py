"""The typed config of a MedCLIP model (pure data: importing it stays cheap)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

BIO_CLINICAL_BERT = "emilyalsentzer/Bio_ClinicalBERT"
"""MedCLIP's text tower: its ``config.json`` and ``vocab.txt`` come from this repository (or the model folder)."""

SWIN_TINY: Mapping[str, Any] = {
    "image_size": 224, "patch_size": 4, "embed_dim": 96, "depths": [2, 2, 6, 2], "num_heads": [3, 6, 12, 24],
    "window_size": 7, "mlp_ratio": 4.0, "layer_norm_eps": 1e-5,
}
"""``transformers.SwinConfig`` settings of ``microsoft/swin-tiny-patch4-window7-224`` (the other settings are
SwinConfig's defaults, which that repository's config.json repeats), so no file is needed for the image tower."""

WEIGHTS_FILE = "pytorch_model.bin"
"""The state dict inside MedCLIP's published zip archives."""

TextPooling = Literal["masked", "upstream"]


@dataclass(frozen=True)
class MedclipConfig:
    """How to build one MedCLIP model.

    ``text_pooling`` picks how the text tower averages over the sequence (of the mean of hidden states 1, 2 and
    last): ``masked`` (default) averages the real tokens only, so a text's embedding does not depend on the other
    texts encoded with it; ``upstream`` reproduces MedCLIP's own code exactly: the batch is padded to its longest
    text and every position, padding included, is averaged.
    """

    vision: Literal["resnet", "swin"]
    embed_dim: int = 512
    image_size: int = 224
    resnet_layers: tuple[int, ...] = (3, 4, 6, 3)
    """Bottleneck blocks per stage; the default is torchvision's ResNet-50."""
    resnet_width_per_group: int = 64
    swin: Mapping[str, Any] = field(default_factory=lambda: dict(SWIN_TINY))
    text_tower: str = BIO_CLINICAL_BERT
    """Where the BERT ``config.json`` and tokenizer files are: a hub repository (model folder or cache), a folder,
    or ``package:<python package>/<folder>``."""
    text_config: Mapping[str, Any] | None = None
    """``transformers.BertConfig`` settings used instead of the tower's ``config.json`` (tiny test models)."""
    context_length: int = 77
    text_pooling: TextPooling = "masked"
