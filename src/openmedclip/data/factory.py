"""`open_source`: build a data source from a small spec (dict from YAML suites and recipes, or a path)."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from pathlib import Path

from openmedclip.data.base import DataSource
from openmedclip.data.folders import ClassFolders
from openmedclip.data.medmnist_npz import MedMNIST
from openmedclip.data.medpix import MedPix
from openmedclip.data.table import ImageTextTable
from openmedclip.data.vqarad import VQARAD
from openmedclip.data.webds import WebDatasetSource
from openmedclip.errors import InvalidInputError

# type -> (class, name of the argument that the spec's "path" fills)
SOURCES: dict[str, tuple[Callable[..., DataSource], str]] = {
    "table": (ImageTextTable, "path"),
    "classfolders": (ClassFolders, "root"),
    "medmnist": (MedMNIST, "npz_path"),
    "medpix": (MedPix, "folder"),
    "vqarad": (VQARAD, "folder"),
    "webdataset": (WebDatasetSource, "urls"),
}
ALIASES = {"csv": "table", "jsonl": "table", "imagetexttable": "table", "folders": "classfolders", "wds": "webdataset"}


def canonical_type(kind: str) -> str:
    """`VQA-RAD`, `vqa_rad` and `vqarad` name the same type."""
    key = re.sub(r"[\s_-]", "", kind.lower())
    return ALIASES.get(key, key)


def guess_type(path: Path) -> str:
    """The source type a bare path most likely means (by suffix, or by the files inside a folder)."""
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return "medmnist"
    if suffix in (".csv", ".jsonl", ".ndjson"):
        return "table"
    if suffix == ".tar" or "{" in path.name:
        return "webdataset"
    if path.is_dir():
        if any(path.glob("descriptions_*.jsonl")):
            return "medpix"
        if (path / "trainset.json").is_file():
            return "vqarad"
        return "webdataset" if any(path.glob("*.tar")) else "classfolders"
    raise InvalidInputError(f"{path}: cannot tell the source type; give a dict with 'type' (one of {list(SOURCES)})")


def open_source(spec: Mapping | str | Path) -> DataSource:
    """Build a source from `{"type": "medmnist", "path": "x.npz", "split": "train", ...}` or from a path.

    Other keys are passed to the source's constructor; `path` fills its main argument. Unknown types or
    options raise `InvalidInputError` listing what is accepted.
    """
    if isinstance(spec, str | Path):
        spec = {"type": guess_type(Path(spec)), "path": str(spec)}
    options = dict(spec)
    kind = str(options.pop("type", ""))
    known = f"{list(SOURCES)} (aliases: {list(ALIASES)})"
    if canonical_type(kind) not in SOURCES:
        raise InvalidInputError(f"unknown data source type {kind!r}; known types: {known}")
    build, main = SOURCES[canonical_type(kind)]
    if "path" in options and main != "path":
        options[main] = options.pop("path")
    params = inspect.signature(build).parameters
    unknown = sorted(set(options) - set(params))
    if unknown:
        accepted = ["path" if p == main else p for p in params]
        raise InvalidInputError(f"{kind} source: unknown option(s) {unknown}; accepted: {accepted}")
    required = [p for p, v in params.items() if v.default is inspect.Parameter.empty and p not in options]
    if required:
        raise InvalidInputError(f"{kind} source: missing {['path' if p == main else p for p in required]}")
    return build(**options)
