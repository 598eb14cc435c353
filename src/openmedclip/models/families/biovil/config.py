"""Typed configs of the BioViL family: the image tower's settings, a registry entry's files and a built model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

IMAGE_FILES = {
    "biovil": "biovil_image_resnet50_proj_size_128.pt",
    "biovil-t": "biovil_t_image_model_proj_size_128.pt",
}
"""The published image checkpoint of each variant (a plain state dict of hi-ml's ``ImageModel``)."""

TEXT_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
"""The CXR-BERT weights beside it, in order of preference."""

TEXT_FILES = ("config.json", "vocab.txt", "tokenizer_config.json")
"""The CXR-BERT config and tokenizer files."""

CONTEXT_LENGTH = 256
"""Tokens per text (at most the BERT's position table). Texts are padded to it and the padding is masked, so
short prompts embed exactly as with upstream's padding to the longest text; longer texts (long reports) are cut,
where upstream encodes up to 512 tokens."""


@dataclass(frozen=True)
class ImageSettings:
    """hi-ml's ``ImageModel``: a torchvision ResNet (Bottleneck blocks, no dilation) and a 1×1-conv projector.

    ``variant`` 'biovil' projects the layer4 map; 'biovil-t' first maps it to 256 channels and concatenates the
    learned "no prior image" embedding (its ViT pooler only runs on a prior image, which this model never gets).
    """

    variant: Literal["biovil", "biovil-t"] = "biovil"
    layers: tuple[int, int, int, int] = (3, 4, 6, 3)
    """Bottleneck blocks per stage: ResNet-50."""
    width_divisor: int = 1
    """Divides every stage's width (1 for the published models; larger for tiny test models)."""
    num_classes: int = 1000
    """Outputs of the unused ImageNet ``fc`` head the checkpoint carries."""
    joint_dim: int = 128
    """The joint image–text space (the projector's hidden and output size)."""
    resize: int = 512
    """Short side after resizing (bilinear)."""
    crop: int = 480
    """Side of the centre crop the model sees (448 for BioViL-T)."""
    pooler_dim: int = 256
    """BioViL-T: channels of the ViT pooler input (and of the "no prior image" embedding)."""
    pooler_blocks: int = 3
    """BioViL-T: transformer blocks of the ViT pooler."""


@dataclass(frozen=True)
class BiovilEntry:
    """How a registry entry's folder is read: the image settings; the files follow from the variant."""

    image: ImageSettings = ImageSettings()

    @property
    def image_file(self) -> str:
        return IMAGE_FILES[self.image.variant]


@dataclass(frozen=True)
class BiovilConfig:
    """What a BioViL model is built from."""

    image: ImageSettings
    text: dict[str, Any]
    """The CXR-BERT ``BertConfig`` as a dict (with ``projection_size``), as read from ``config.json``."""
    context_length: int = CONTEXT_LENGTH
    vocab: tuple[str, ...] = field(default=())
    """An in-memory WordPiece vocabulary (tiny examples); empty: the folder's tokenizer files."""
