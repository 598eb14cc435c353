"""The batched encoding engine: images and texts in, L2-normalised float32 features out.

Decoding and preprocessing run in DataLoader workers while the model encodes the previous batch. An item that
cannot be read is recorded in ``errors`` and skipped; every other item still gets its features.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from ..errors import InvalidInputError
from ..models.loaded import LoadedModel
from ..progress import progress_bar

ImageItem = Union[str, Path, Image.Image, Any]
"""A file path, an RGB ``PIL.Image`` or an ``openmedclip.io.MedicalImage``."""


@dataclass(frozen=True)
class ItemError:
    """One input that could not be encoded, and why."""

    index: int
    item: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "item": self.item, "message": self.message}


@dataclass
class EncodedImages:
    """Features for the items that could be read.

    ``features`` is ``[M, D]`` float32, L2-normalised, on the CPU; row ``k`` belongs to input ``indices[k]``.
    """

    features: torch.Tensor
    indices: list[int]
    items: list[str]
    errors: list[ItemError] = field(default_factory=list)


def describe_item(item: ImageItem) -> str:
    """A short name for an input item, used in results and error messages."""
    if isinstance(item, (str, Path)):
        return str(item)
    path = getattr(item, "path", None) or getattr(item, "filename", None)
    return str(path) if path else f"<{type(item).__name__}>"


def load_model_input(item: ImageItem, read_options: dict[str, Any] | None = None) -> Image.Image:
    """Read a file (any format ``openmedclip.io`` knows) or take an image object, as an RGB ``PIL.Image``."""
    if isinstance(item, Image.Image):
        return item if item.mode == "RGB" else item.convert("RGB")
    from ..io import MedicalImage, read_image, to_model_input

    if isinstance(item, MedicalImage):
        return to_model_input(item)
    return to_model_input(read_image(item, **(read_options or {})))


class _ImageDataset(Dataset):
    """Reads and preprocesses one item; failures travel as messages instead of exceptions."""

    def __init__(self, items: Sequence[ImageItem], preprocess, read_options: dict[str, Any] | None):
        self.items = items
        self.preprocess = preprocess
        self.read_options = read_options

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | None, str | None]:
        try:
            return index, self.preprocess(load_model_input(self.items[index], self.read_options)), None
        except Exception as error:  # noqa: BLE001 - a batch job reports every bad item and goes on
            return index, None, str(error) or type(error).__name__


def _collate(batch: list[tuple[int, torch.Tensor | None, str | None]]):
    good = [(index, tensor) for index, tensor, _ in batch if tensor is not None]
    failed = [(index, message) for index, tensor, message in batch if tensor is None]
    pixels = torch.stack([tensor for _, tensor in good]) if good else None
    return [index for index, _ in good], pixels, failed


def default_num_workers(n_items: int, batch_size: int) -> int:
    """Loader workers: none for a single batch, else up to half the cores (the rest run the model)."""
    if n_items <= batch_size:
        return 0
    return max(1, min(4, (os.cpu_count() or 2) // 2))


def normalise(features: torch.Tensor) -> torch.Tensor:
    """L2-normalise rows and return float32 on the CPU."""
    return F.normalize(features.float(), dim=-1).cpu()


def encode_images(
    loaded: LoadedModel,
    items: Sequence[ImageItem],
    *,
    batch_size: int = 32,
    num_workers: int | None = None,
    read_options: dict[str, Any] | None = None,
    progress: bool = False,
) -> EncodedImages:
    """Encode images in batches; unreadable items are listed in ``errors`` and skipped."""
    workers = default_num_workers(len(items), batch_size) if num_workers is None else num_workers
    loader = DataLoader(
        _ImageDataset(items, loaded.preprocess, read_options),
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=_collate,
        pin_memory=loaded.device.type == "cuda",
        persistent_workers=False,
    )
    chunks: list[torch.Tensor] = []
    indices: list[int] = []
    errors: list[ItemError] = []
    with progress_bar("Encoding images", total=len(items), enabled=progress) as advance, torch.inference_mode():
        for batch_indices, pixels, failed in loader:
            errors.extend(ItemError(i, describe_item(items[i]), message) for i, message in failed)
            if pixels is not None:
                pixels = pixels.to(loaded.device, dtype=loaded.dtype, non_blocking=True)
                chunks.append(normalise(loaded.model.encode_image(pixels)))
                indices.extend(batch_indices)
            advance(len(batch_indices) + len(failed))
    dim = chunks[0].shape[1] if chunks else 0
    features = torch.cat(chunks) if chunks else torch.empty(0, dim)
    return EncodedImages(features, indices, [describe_item(items[i]) for i in indices], errors)


def encode_texts(
    loaded: LoadedModel, texts: Sequence[str], *, batch_size: int = 256, progress: bool = False
) -> torch.Tensor:
    """Encode texts in batches: ``[N, D]`` float32, L2-normalised, on the CPU."""
    texts = list(texts)
    chunks: list[torch.Tensor] = []
    with progress_bar("Encoding texts", total=len(texts), enabled=progress) as advance, torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch = texts[start : start + batch_size]
            tokens = loaded.tokenizer(batch).to(loaded.device)
            chunks.append(normalise(loaded.model.encode_text(tokens)))
            advance(len(batch))
    if not chunks:
        raise InvalidInputError("encode_texts needs at least one text")
    return torch.cat(chunks)
