"""What an audit compares: named parts (one split of one data source each), from paths or from a suite."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openmedclip.data.base import DataSource
from openmedclip.data.factory import canonical_type, guess_type, open_source

SPLITS: dict[str, tuple[str, ...]] = {
    "medmnist": ("train", "val", "test"),
    "medpix": ("train", "dev"),
    "vqarad": ("train-only", "test"),
}
"""The splits an audit opens for a source type (VQA-RAD: 'train-only', since its test images are also asked about
in 'train'); other types are one part."""

TRAINING_SPLITS = ("train", "train-only")
"""Split names whose items a model learns from; every other split is evaluated on."""


@dataclass
class Part:
    """One split of one data source, named ``dataset/split``."""

    name: str
    source: DataSource
    split: str | None = None

    @property
    def is_training(self) -> bool:
        return self.split in TRAINING_SPLITS


def _dataset_name(spec: Mapping[str, Any]) -> str:
    path = Path(str(spec["path"]))
    return path.name.removesuffix(".npz") if path.name else str(path)


def parts_of_spec(spec: Mapping[str, Any], name: str | None = None) -> list[Part]:
    """Every split an audit opens of the source ``spec`` (a dict as ``open_source`` takes, without ``split``)."""
    kind = canonical_type(str(spec["type"]))
    dataset = name or _dataset_name(spec)
    splits = SPLITS.get(kind)
    if splits is None:
        return [Part(dataset, open_source(spec), spec.get("split"))]
    return [Part(f"{dataset}/{split}", open_source({**spec, "split": split}), split) for split in splits]


def _loose_files(folder: Path) -> bool:
    """Whether ``folder`` holds image files directly (so it is not a tree of class folders)."""
    from openmedclip.io.formats import image_suffix

    return any(entry.is_file() and image_suffix(entry) for entry in folder.iterdir())


def files_part(folder: Path) -> Part:
    """Every image file under ``folder`` as one unlabelled part, keyed by the path relative to ``folder``."""
    from openmedclip.data.files import FileSource, Row
    from openmedclip.io import find_images

    rows = [Row(str(path.relative_to(folder)), path) for path in find_images([folder])]
    return Part(folder.name, FileSource(folder.name, rows, task="image-text"))


def source_parts(path: str | Path) -> list[Part]:
    """The parts of the source at ``path`` (its type guessed as ``open_source`` does); a folder with image files of
    its own (not only class folders) is one unlabelled part of every image file in its tree."""
    path = Path(path)
    kind = guess_type(path)
    if kind == "classfolders" and _loose_files(path):
        return [files_part(path)]
    return parts_of_spec({"type": kind, "path": str(path)})


def suite_parts(suite: str | Path, data_root: str | Path) -> list[Part]:
    """The parts of every distinct source (type and path) a suite's datasets read, under ``data_root``."""
    from openmedclip.eval.suite import load_suite, resolve_spec

    seen: dict[tuple[str, str], Mapping[str, Any]] = {}
    for entry in load_suite(suite).datasets.values():
        spec = resolve_spec(entry.source, Path(data_root))
        base = {"type": canonical_type(str(spec["type"])), "path": str(spec["path"])}
        seen.setdefault((base["type"], base["path"]), base)
    return [part for spec in seen.values() for part in parts_of_spec(spec)]
