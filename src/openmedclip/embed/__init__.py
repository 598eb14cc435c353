"""The one encode engine: images (files, ``MedicalImage``s, data-source rows) and texts in, L2-normalised
float32 features out; plus the on-disk feature cache."""

from openmedclip.embed.engine import EncodedImages, ImageItem, ItemError, encode_images, encode_texts

__all__ = ["EncodedImages", "ImageItem", "ItemError", "encode_images", "encode_texts"]
