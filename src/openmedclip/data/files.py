"""`FileSource`: the shared base of sources whose images are files read through `openmedclip.io`."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from openmedclip.data.base import DataSource, Task, label_matrix, multiclass_targets
from openmedclip.errors import ImageReadError
from openmedclip.io import MedicalImage, read_image


@dataclass
class Row:
    """One candidate item of a file-backed source, before checks."""

    key: str
    path: Path
    captions: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    meta: dict = field(default_factory=dict)


def _problem(path: Path, read_options: dict) -> str | None:
    try:
        read_image(path, **read_options)
    except ImageReadError as err:
        return err.problem
    return None


class FileSource(DataSource):
    """Rows of image files with captions and labels.

    Rows whose file does not exist are always left out; with `validate=True` every file is also decoded and
    unreadable ones are left out. Both are listed in `skipped` with the reason and logged; all other rows are kept.
    Without validation an unreadable file raises `ImageReadError` on indexing (iteration skips and reports it).
    """

    def __init__(
        self,
        name: str,
        rows: Iterable[Row],
        *,
        task: Task,
        label_names: Sequence[str] = (),
        validate: bool = False,
        read_options: dict | None = None,
        bad: Sequence[tuple[str, str]] = (),
    ):
        self.name = name
        self.task = task
        self.label_names = list(label_names)
        self.read_options = dict(read_options or {})
        self.skipped = []
        rows = list(rows)
        problems = {i: f"file not found: {row.path}" for i, row in enumerate(rows) if not row.path.is_file()}
        if validate:
            problems.update(self._unreadable(rows, skip=problems.keys()))
        self.report_skipped([*bad, *((rows[i].key, problems[i]) for i in sorted(problems))])
        kept = [row for i, row in enumerate(rows) if i not in problems]
        self.keys = [row.key for row in kept]
        self.paths = [row.path for row in kept]
        self.metadata = [{**row.meta, "path": str(row.path)} for row in kept]
        self._captions = [row.captions for row in kept]
        self.labels = label_matrix([row.labels for row in kept], self.label_names)
        self.targets = multiclass_targets(self.labels) if task == "multiclass" else None

    def _unreadable(self, rows: list[Row], skip: Iterable[int]) -> dict[int, str]:
        skip = set(skip)
        todo = [i for i in range(len(rows)) if i not in skip]
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            found = pool.map(lambda i: _problem(rows[i].path, self.read_options), todo)
            return {i: problem for i, problem in zip(todo, found, strict=True) if problem is not None}

    def image(self, i: int) -> MedicalImage:
        return read_image(self.paths[i], **self.read_options)

    def captions(self, i: int) -> list[str]:
        return list(self._captions[i])
