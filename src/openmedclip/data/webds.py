"""`WebDatasetSource`: a `DataSource` over WebDataset tar shards (an image plus `txt` and/or `json` per sample)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from openmedclip.data.base import DataSource, Task, label_matrix, multiclass_targets
from openmedclip.data.shards import DATASET_INFO
from openmedclip.errors import ImageReadError, InvalidInputError
from openmedclip.io import MedicalImage, read_image_bytes

IMAGE_EXTS = ("png", "jpg", "jpeg", "webp", "tif", "tiff")


def shard_urls(urls: str | Path | Sequence[str | Path]) -> list[str]:
    """Shard list from a folder (its `*.tar`), a brace pattern (`shard-{000000..000009}.tar`) or a list."""
    from webdataset import SimpleShardList

    if isinstance(urls, str | Path) and Path(urls).is_dir():
        found = sorted(str(p) for p in Path(urls).glob("*.tar"))
        if not found:
            raise InvalidInputError(f"{urls}: no .tar shards in this folder")
        return found
    expanded = SimpleShardList(str(urls)).urls if isinstance(urls, str | Path) else [str(u) for u in urls]
    missing = [u for u in expanded if _is_local(u) and not Path(u).is_file()]
    if not expanded or missing:
        raise InvalidInputError(f"shard(s) not found: {missing[:5] or urls}")
    return expanded


def _is_local(url: str) -> bool:
    return "://" not in url and not url.startswith("pipe:")


def _dataset_info(urls: list[str]) -> dict:
    """The `dataset.json` written by `write_shards` beside local shards, or {}."""
    info = Path(urls[0]).parent / DATASET_INFO if _is_local(urls[0]) else None
    return json.loads(info.read_text(encoding="utf-8")) if info and info.is_file() else {}


def _fields(sample: dict) -> tuple[dict, str]:
    """A sample's ``json`` object (or {}) and stripped ``txt``; `ValueError` when either does not decode."""
    record = json.loads(sample["json"]) if "json" in sample else {}
    if not isinstance(record, dict):
        raise ValueError(f"json holds a {type(record).__name__}, not an object")
    return record, sample["txt"].decode("utf-8").strip() if "txt" in sample else ""


def _shard_problem(error: Exception) -> tuple[str, str]:
    """(shard url, problem) of an error webdataset met while reading a shard (it appends the url to the args)."""
    url = error.args[-1] if error.args and isinstance(error.args[-1], str) else "a shard"
    detail = error.args[0] if error.args else ""
    return url, f"unreadable from here on: {type(error).__name__}: {detail}"


class WebDatasetSource(DataSource):
    """All samples of some shards, read once with `webdataset`; image bytes stay in memory, decoded on access.

    Captions come from the sample's `json["captions"]` or else its `txt`; labels from `json["labels"]` (names).
    Label names and task come from the arguments, else the `dataset.json` of `write_shards`, else the data
    (sorted label names; "image-text" without labels, "multiclass" when every sample has one, else "multilabel").
    Samples without an image entry or with an unreadable ``json`` or ``txt``, and the rest of a shard that cannot be
    read on, are left out and reported in `skipped`.
    """

    def __init__(
        self,
        urls: str | Path | Sequence[str | Path],
        *,
        label_names: Sequence[str] | None = None,
        task: Task | None = None,
        name: str | None = None,
        validate: bool = False,
    ):
        import webdataset as wds

        self.urls = shard_urls(urls)
        info = _dataset_info(self.urls)
        self.name = name or info.get("name") or Path(self.urls[0]).parent.name
        self.skipped = []
        self.keys, self.metadata, self._images, self._origins, self._captions = [], [], [], [], []
        label_lists: list[list[str]] = []
        bad: list[tuple[str, str]] = []

        def shard_error(error: Exception) -> bool:
            bad.append(_shard_problem(error))
            return True  # go on with the next shard

        read = wds.tarfile_to_samples(handler=shard_error)
        for sample in wds.DataPipeline(wds.SimpleShardList(self.urls), read):
            origin = f"{sample['__url__']}#{sample['__key__']}"
            try:
                record, text = _fields(sample)
            except ValueError as err:  # bad json and utf-8 are ValueErrors
                bad.append((origin, f"{type(err).__name__}: {err}"))
                continue
            key = str(record.get("key") or sample["__key__"])
            ext = next((e for e in IMAGE_EXTS if e in sample), None)
            if ext is None:
                bad.append((key, f"no image entry in {origin}"))
                continue
            self.keys.append(key)
            self.metadata.append(record.get("meta") or {})
            self._images.append(sample[ext])
            self._origins.append(origin)
            self._captions.append(list(record.get("captions") or ([text] if text else [])))
            label_lists.append(list(record.get("labels") or []))
        self.report_skipped(bad)
        if validate:
            self._drop_unreadable(label_lists)
        seen = sorted({n for names in label_lists for n in names})
        self.label_names = list(label_names or info.get("label_names") or seen)
        self.task = task or info.get("task") or self._infer_task(label_lists)
        self.labels = label_matrix(label_lists, self.label_names)
        self.targets = multiclass_targets(self.labels) if self.task == "multiclass" else None

    @staticmethod
    def _infer_task(label_lists: list[list[str]]) -> Task:
        if not any(label_lists):
            return "image-text"
        return "multiclass" if all(len(ls) == 1 for ls in label_lists) else "multilabel"

    def _drop_unreadable(self, label_lists: list[list[str]]) -> None:
        bad: dict[int, str] = {}
        for i in range(len(self.keys)):
            try:
                self.image(i)
            except ImageReadError as err:
                bad[i] = err.problem
        self.report_skipped([(self.keys[i], problem) for i, problem in bad.items()])
        for table in (self.keys, self.metadata, self._images, self._origins, self._captions, label_lists):
            table[:] = [item for i, item in enumerate(table) if i not in bad]

    def image(self, i: int) -> MedicalImage:
        return read_image_bytes(self._images[i], self._origins[i])

    def captions(self, i: int) -> list[str]:
        return list(self._captions[i])
