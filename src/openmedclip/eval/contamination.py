"""Contamination check: which test items a model saw in training, by decoded pixel hash.

A model folder may hold ``training_manifest.json.gz`` (:mod:`openmedclip.train.manifest`), the pixel hash of every
training image. A test item is *seen* when its decoded pixels hash to one of them, whatever its file, name or
split. Test hashes are stored under the feature cache (``pixel_hashes/<key>.json``, keyed like image features by
the source's rows and files), so a second run reads no image for them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openmedclip.atomic import write_json
from openmedclip.data import DataSource
from openmedclip.embed.cache import data_fingerprint, digest
from openmedclip.errors import ImageReadError
from openmedclip.io.pixel_hash import pixel_hash
from openmedclip.train.manifest import find_manifest, read_manifest


@dataclass(frozen=True)
class TrainingItems:
    """A model's training items by pixel hash, and the manifest they were read from."""

    path: Path
    seen: dict[str, tuple[str, str]]
    """Pixel hash -> (training dataset, item key)."""


def model_training_items(folder: str | Path | None) -> TrainingItems | None:
    """The training items recorded beside a model (its folder's manifest), or None when it has none."""
    path = find_manifest(folder)
    return None if path is None else TrainingItems(path, read_manifest(path).seen())


@dataclass(frozen=True)
class Contamination:
    """The check of one test set against one model's training items."""

    checked: bool
    """False when the model has no training manifest."""
    of: int
    """Test items checked (the encoded ones)."""
    seen: tuple[int, ...] = ()
    """Positions (among the encoded items) of the items seen in training."""
    seen_items: tuple[dict[str, str], ...] = ()
    """Per seen item: its key and the training dataset and key with the same pixels."""
    excluded: bool = False
    """Whether seen items are left out of the metrics (``--exclude-seen``)."""
    manifest: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "seen": len(self.seen) if self.checked else None,
            "of": self.of,
            "excluded": self.excluded,
            "manifest": self.manifest,
            "seen_items": list(self.seen_items),
        }


def split_hashes(
    source: DataSource, rows: Sequence[int], spec: Mapping[str, Any], cache_folder: Path | None
) -> list[str | None]:
    """The pixel hash of each of ``rows`` (None where the image cannot be read), cached under ``cache_folder``."""
    path = None
    if cache_folder is not None:
        path = cache_folder / "pixel_hashes" / f"{digest(['pixel_hashes', data_fingerprint(source, rows, spec)])}.json"
        if path.is_file():
            try:
                cached = json.loads(path.read_text(encoding="utf-8"))
                if isinstance(cached, list) and len(cached) == len(rows):
                    return cached
            except (OSError, json.JSONDecodeError):
                pass
    hashes: list[str | None] = []
    for row in rows:
        try:
            hashes.append(pixel_hash(source.image(row).pixels))
        except ImageReadError:
            hashes.append(None)
    if path is not None:
        write_json(path, hashes)
    return hashes


def check_contamination(
    training: TrainingItems | None,
    hashes: Sequence[str | None],
    keys: Sequence[str],
    indices: Sequence[int],
    *,
    exclude: bool = False,
) -> Contamination:
    """The check of the encoded test items: ``indices[k]`` is the position in ``hashes``/``keys`` of item ``k``."""
    if training is None:
        return Contamination(checked=False, of=len(indices))
    seen = tuple(k for k, index in enumerate(indices) if hashes[index] in training.seen)
    items = []
    for k in seen:
        dataset, key = training.seen[str(hashes[indices[k]])]
        items.append({"key": keys[indices[k]], "train_dataset": dataset, "train_key": key})
    return Contamination(True, len(indices), seen, tuple(items), exclude, training.path.name)
