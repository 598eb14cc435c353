"""The one encode engine: images (files, ``MedicalImage``s, PIL images, data-source rows) and texts in,
L2-normalised float32 features out; plus the on-disk feature cache (:mod:`openmedclip.embed.cache`)."""

from openmedclip.embed.engine import (
    EncodedImages,
    ItemError,
    encode_images,
    encode_texts,
)
from openmedclip.embed.inputs import ImageItem, describe_item

__all__ = ["EncodedImages", "ImageItem", "ItemError", "describe_item", "encode_images", "encode_texts"]
