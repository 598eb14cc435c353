"""Per-item fingerprints: the decoded pixel hash (exact copies), a perceptual hash (near copies) and, with a model,
an image embedding."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from openmedclip.audit.parts import Part
from openmedclip.errors import ImageReadError
from openmedclip.io.convert import to_model_picture
from openmedclip.io.image import MedicalImage
from openmedclip.io.pixel_hash import pixel_hash
from openmedclip.models.loaded import LoadedModel
from openmedclip.progress import progress_bar

HASH_SIZE = 8
"""The perceptual hash is ``HASH_SIZE**2`` = 64 bits (imagehash's pHash: the signs of the low 8 x 8 DCT
frequencies of a 32 x 32 grey thumbnail against their median)."""

THUMBNAIL_SIDE = 32
"""Near-copy candidates are confirmed on grey thumbnails of this side (zero mean, unit norm: their dot product is
the pixels' correlation)."""


@dataclass
class Fingerprints:
    """Fingerprints of every readable item of some parts, one row per item."""

    parts: list[str]
    """Per item: the name of its part."""
    rows: list[int]
    """Per item: its row in its part's source."""
    keys: list[str]
    labels: list[tuple[str, ...]]
    exact: list[str]
    """Per item: hex SHA-256 of the decoded pixels (:func:`openmedclip.io.pixel_hash.pixel_hash`)."""
    perceptual: np.ndarray
    """``[N, 64]`` bool: the perceptual hash bits."""
    thumbnails: np.ndarray
    """``[N, THUMBNAIL_SIDE**2]`` float32: grey thumbnails with zero mean and unit norm (all zero when constant)."""
    features: np.ndarray | None = None
    """``[N, D]`` float32 L2-normalised image embeddings, when a model was given."""
    unreadable: list[tuple[str, str, str]] = field(default_factory=list)
    """(part, key, problem) for each item that could not be read."""

    def __len__(self) -> int:
        return len(self.keys)


def perceptual_hash(image: MedicalImage) -> np.ndarray:
    """The 64 pHash bits of what a ``MedicalImage`` shows (its 8-bit picture, made grey)."""
    import imagehash

    return imagehash.phash(to_model_picture(image).convert("L"), hash_size=HASH_SIZE).hash.flatten()


def thumbnail(image: MedicalImage) -> np.ndarray:
    """The image's grey ``THUMBNAIL_SIDE`` x ``THUMBNAIL_SIDE`` thumbnail, flattened, with zero mean and unit norm."""
    picture = to_model_picture(image).convert("L").resize((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.BILINEAR)
    values = np.asarray(picture, dtype=np.float32).ravel()
    values = values - values.mean()
    norm = float(np.linalg.norm(values))
    return values / norm if norm > 0 else values


def fingerprint(
    parts: Sequence[Part], model: LoadedModel | None = None, *, batch_size: int = 64, progress: bool = False
) -> Fingerprints:
    """Read every item of ``parts`` once: its pixel hash, perceptual hash and (with ``model``) embedding."""
    names: list[str] = []
    rows: list[int] = []
    keys: list[str] = []
    labels: list[tuple[str, ...]] = []
    exact: list[str] = []
    bits: list[np.ndarray] = []
    thumbnails: list[np.ndarray] = []
    unreadable: list[tuple[str, str, str]] = []
    features: list[np.ndarray] = []
    total = sum(len(part.source) for part in parts)
    with progress_bar("fingerprinting", total, enabled=progress) as advance:
        for part in parts:
            source = part.source
            readable: list[int] = []
            for row in range(len(source)):
                try:
                    image = source.image(row)
                except ImageReadError as error:
                    unreadable.append((part.name, source.keys[row], error.problem))
                    continue
                finally:
                    advance(1)
                readable.append(row)
                names.append(part.name)
                rows.append(row)
                keys.append(source.keys[row])
                labels.append(tuple(source.label_list(row)))
                exact.append(pixel_hash(image.pixels))
                bits.append(perceptual_hash(image))
                thumbnails.append(thumbnail(image))
            if model is not None and readable:
                from openmedclip.embed import encode_images

                encoded = encode_images(model, source, rows=readable, batch_size=batch_size)
                if encoded.errors:
                    raise ImageReadError(encoded.errors[0].item, encoded.errors[0].message)
                features.append(encoded.features.numpy())
    perceptual = np.array(bits, dtype=bool).reshape(len(bits), HASH_SIZE * HASH_SIZE)
    small = np.array(thumbnails, dtype=np.float32).reshape(len(thumbnails), THUMBNAIL_SIDE * THUMBNAIL_SIDE)
    embedded = np.concatenate(features) if model is not None and features else None
    return Fingerprints(names, rows, keys, labels, exact, perceptual, small, embedded, unreadable)
