"""Training manifests: which images a model was trained on, by decoded pixel hash, for contamination checks.

`openmedclip train` writes ``training_manifest.json.gz`` into every checkpoint folder it saves, and evaluation
looks for it beside the model (:mod:`openmedclip.eval.contamination`). The file is gzip-compressed JSON::

    {"format": "openmedclip-training-manifest", "version": 1, "hash": "<how hashes are made>",
     "n_items": 8098, "n_unique": 8090,
     "datasets": [{"name": "pneumoniamnist", "spec": {"type": "medmnist", "path": ..., "split": "train",
                   "weight": 0.3}, "n_items": 4708, "keys": [...], "hashes": [...]}, ...]}

``hashes[i]`` is the :func:`openmedclip.io.pixel_hash.pixel_hash` of item ``keys[i]``. The items of a dataset are
every readable row of a recipe source with a positive weight -- what its type, path, split and filters give (a
streamed source: one pass over its shards) -- whether or not a given epoch drew each of them.

``python -m openmedclip.train.manifest --recipe R.yaml --out FOLDER`` writes the manifest of a recipe's training
data into FOLDER (e.g. a model exported before manifests existed).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openmedclip.atomic import write_atomic
from openmedclip.data import DataSource, open_source
from openmedclip.errors import ImageReadError, InvalidInputError, OpenMedClipError
from openmedclip.io.pixel_hash import PIXEL_HASH, pixel_hash
from openmedclip.train.config import DataSourceSpec, TrainConfig, load_recipe

MANIFEST_NAME = "training_manifest.json.gz"
FORMAT = "openmedclip-training-manifest"
VERSION = 1
TRAINING_KEYS = (*DataSourceSpec.__annotations__, "streaming", "shuffle_buffer")
"""Recipe keys of a dataset spec that say how it is trained on, not which items it holds."""


@dataclass(frozen=True)
class ManifestDataset:
    """One training source: its name, spec (as the recipe gives it, without caption rules) and items."""

    name: str
    spec: dict[str, Any]
    keys: list[str]
    hashes: list[str]
    """Decoded pixel hash of each item of ``keys``."""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "spec": self.spec, "n_items": len(self.keys), "keys": self.keys,
                "hashes": self.hashes}


@dataclass(frozen=True)
class TrainingManifest:
    """The training items of a model, dataset by dataset."""

    datasets: list[ManifestDataset]

    def seen(self) -> dict[str, tuple[str, str]]:
        """Pixel hash -> (dataset name, item key) of its first training item."""
        found: dict[str, tuple[str, str]] = {}
        for dataset in self.datasets:
            for key, digest in zip(dataset.keys, dataset.hashes, strict=True):
                found.setdefault(digest, (dataset.name, key))
        return found

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "hash": PIXEL_HASH,
            "n_items": sum(len(d.keys) for d in self.datasets),
            "n_unique": len(self.seen()),
            "datasets": [d.to_dict() for d in self.datasets],
        }

    def write(self, folder: Path) -> Path:
        """Write ``folder/training_manifest.json.gz`` atomically (the same bytes for the same manifest)."""
        text = json.dumps(self.to_dict(), separators=(",", ":")).encode("utf-8")
        path = Path(folder) / MANIFEST_NAME
        write_atomic(path, lambda handle: handle.write(gzip.compress(text, compresslevel=9, mtime=0)))
        return path


def read_manifest(path: Path) -> TrainingManifest:
    """A manifest file; `InvalidInputError` naming the file when it is not one."""
    try:
        payload = json.loads(gzip.decompress(Path(path).read_bytes()))
        if payload.get("format") != FORMAT or payload.get("version") != VERSION:
            raise ValueError(f"not a {FORMAT} version {VERSION} file")
        if payload.get("hash") != PIXEL_HASH:
            raise ValueError(f"hashes made as {payload.get('hash')!r}, expected {PIXEL_HASH!r}")
        datasets = [
            ManifestDataset(str(d["name"]), dict(d["spec"]), [str(k) for k in d["keys"]], [str(h) for h in d["hashes"]])
            for d in payload["datasets"]
        ]
        if any(len(d.keys) != len(d.hashes) for d in datasets):
            raise ValueError("a dataset has not one hash per key")
    except (OSError, EOFError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise InvalidInputError(f"{path}: not a readable training manifest ({err})") from None
    return TrainingManifest(datasets)


def find_manifest(folder: str | Path | None) -> Path | None:
    """The manifest in a model folder, or None when there is none (or no folder)."""
    if folder is None:
        return None
    path = Path(folder) / MANIFEST_NAME
    return path if path.is_file() else None


def source_hashes(source: DataSource) -> tuple[list[str], list[str]]:
    """Keys and decoded pixel hashes of a source's readable rows (unreadable rows are left out and reported)."""

    def one(i: int) -> str | None:
        try:
            return pixel_hash(source.image(i).pixels)
        except ImageReadError as err:
            source.report_skipped([(source.keys[i], err.problem)])
            return None

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        hashes = list(pool.map(one, range(len(source))))
    kept = [(key, digest) for key, digest in zip(source.keys, hashes, strict=True) if digest is not None]
    return [key for key, _ in kept], [digest for _, digest in kept]


def _stream_hashes(spec: Mapping[str, Any]) -> tuple[str, list[str], list[str]]:
    """Name, sample ids and hashes of a streamed source, from one pass over its shards."""
    from openmedclip.data.streaming import ShardSource, ShardStream

    shards = ShardSource.from_spec(spec)
    stream = ShardStream([shards], resample=False, shuffle_buffer=0, rank=0, world_size=1)
    pairs = [(item.id, pixel_hash(item.sample.image.pixels)) for item in stream]
    return shards.name, [key for key, _ in pairs], [digest for _, digest in pairs]


def _positive_weight(spec: Mapping[str, Any]) -> bool:
    return "weight" not in spec or float(spec["weight"]) > 0


def recipe_manifest(datasets: Sequence[Mapping[str, Any]]) -> TrainingManifest:
    """The manifest of a recipe's ``datasets`` specs (`TrainConfig.datasets`): each source with a positive weight,
    opened as training opens it."""
    entries = []
    for spec in datasets:
        if not _positive_weight(spec):
            continue
        source_spec = {k: v for k, v in spec.items() if k not in TRAINING_KEYS}
        recorded = {**source_spec, **({"weight": spec["weight"]} if "weight" in spec else {})}
        if spec.get("streaming"):
            name, keys, hashes = _stream_hashes(source_spec)
        else:
            source = open_source(source_spec)
            name = source.name
            keys, hashes = source_hashes(source)
        entries.append(ManifestDataset(name, recorded, keys, hashes))
    return TrainingManifest(entries)


def config_manifest(config: TrainConfig) -> TrainingManifest:
    """The manifest of a training run's data."""
    return recipe_manifest([dict(spec) for spec in config.datasets])


def main(argv: Sequence[str] | None = None) -> int:
    """Write the training manifest of a recipe's data into a folder; 0 when done, 2 for a bad recipe or data."""
    parser = argparse.ArgumentParser(prog="python -m openmedclip.train.manifest", description=main.__doc__)
    parser.add_argument("--recipe", type=Path, required=True, help="training recipe YAML")
    parser.add_argument("--out", type=Path, required=True, help="folder to write training_manifest.json.gz into")
    args = parser.parse_args(argv)
    try:
        manifest = config_manifest(load_recipe(args.recipe))
    except OpenMedClipError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    path = manifest.write(args.out)
    counts = ", ".join(f"{d.name} {len(d.keys)}" for d in manifest.datasets)
    print(f"{path}: {counts} ({path.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
