"""The interface every data source shares: a label matrix, label names, metadata, keys and `Sample` items."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from openmedclip.errors import ImageReadError, InvalidInputError
from openmedclip.io.image import MedicalImage

Task = Literal["multiclass", "multilabel", "image-text"]

log = logging.getLogger(__name__)


@dataclass
class Sample:
    """One item: its image (float pixels + metadata, as ``openmedclip.io`` reads it), its captions, the names of its
    labels, a stable key and free metadata."""

    image: MedicalImage
    captions: list[str]
    labels: list[str]
    key: str
    meta: dict = field(default_factory=dict)


@dataclass
class SampleText:
    """An item's text side, without reading its image: what captioning needs."""

    captions: list[str]
    labels: list[str]
    key: str
    meta: dict = field(default_factory=dict)


@dataclass(frozen=True)
class SkippedItem:
    """An unreadable item, in the place of its sample (what a training loader counts and reports): its name (file
    path or stream id) and the problem."""

    item: str
    problem: str


class DataSource(ABC):
    """A sized, indexable collection of `Sample` items with torchxrayvision-like tables.

    Attributes (all aligned by row):
        name: short name of the source.
        task: "multiclass" (one label per row, also `targets`), "multilabel" or "image-text" (no labels).
        label_names: class names, the columns of `labels` (empty for image-text).
        labels: float32 [N, L] one-hot (multiclass) or multi-hot (multilabel) matrix.
        targets: int64 [N] class indices for multiclass sources, else None.
        metadata: one dict per row.
        keys: one stable id per row.
        skipped: (key, reason) for each row left out because its image was missing or unreadable.
        groups: None, or per grouping unit ("case", "patient", "study") one group id per row: rows that share an
            id are not independent (images of one clinical case), so intervals should resample them together.
    """

    name: str
    task: Task
    label_names: list[str]
    labels: np.ndarray
    targets: np.ndarray | None
    metadata: list[dict]
    keys: list[str]
    skipped: list[tuple[str, str]]
    groups: dict[str, list[str]] | None = None

    @abstractmethod
    def image(self, i: int) -> MedicalImage:
        """The image of row `i`; raises `ImageReadError` when it cannot be read."""

    def captions(self, i: int) -> list[str]:
        """The captions of row `i` (none by default)."""
        return []

    def group_ids(self, unit: str) -> list[str]:
        """One id per row of the grouping ``unit``: from `groups`, else from the metadata field ``unit`` when every
        row has one; `InvalidInputError` naming the units the source has otherwise."""
        if self.groups and unit in self.groups:
            return list(self.groups[unit])
        values = [row.get(unit) for row in self.metadata]
        if self.metadata and all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in values):
            return [str(v) for v in values]
        known = sorted(self.groups or ())
        raise InvalidInputError(
            f"{self.name}: no group id {unit!r} for every row (groups it has: {known or 'none'}; "
            "or name a metadata field that every row holds)"
        )

    def label_list(self, i: int) -> list[str]:
        """Names of the labels set in row `i`."""
        return [name for name, v in zip(self.label_names, self.labels[i], strict=True) if v > 0]

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, i: int) -> Sample:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"{self.name}: index {i} out of range for {n} items")
        i %= n
        return Sample(self.image(i), self.captions(i), self.label_list(i), self.keys[i], dict(self.metadata[i]))

    def sample_text(self, i: int) -> SampleText:
        """Row `i`'s captions, label names, key and metadata; its image is not read."""
        return SampleText(self.captions(i), self.label_list(i), self.keys[i], dict(self.metadata[i]))

    def __iter__(self) -> Iterator[Sample]:
        """All readable samples in order; unreadable ones are added to `skipped` and logged."""
        for i in range(len(self)):
            try:
                yield self[i]
            except ImageReadError as err:
                self.report_skipped([(self.keys[i], err.problem)])

    def report_skipped(self, bad: Sequence[tuple[str, str]]) -> None:
        """Record rows left out (once per key) and log one warning naming them."""
        known = {key for key, _ in self.skipped}
        new = [(key, reason) for key, reason in bad if key not in known]
        if not new:
            return
        self.skipped.extend(new)
        shown = "; ".join(f"{key} ({reason})" for key, reason in new[:5])
        more = f"; ... {len(new) - 5} more" if len(new) > 5 else ""
        log.warning("%s: skipped %d item(s): %s%s", self.name, len(new), shown, more)

    def empty_reason(self) -> str:
        """Why the source has no items, in one line (for an error about using it)."""
        return f"{self.name}: no usable items ({skipped_summary(self.skipped) if self.skipped else 'it is empty'})"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, task={self.task!r}, n={len(self)}, "
            f"labels={len(self.label_names)}, skipped={len(self.skipped)})"
        )


def skipped_summary(skipped: Sequence[tuple[str, str]]) -> str:
    """``N skipped: 3 file not found (e.g. a.png); 1 empty 'image' value (e.g. row 4)``: skipped items by the
    kind of reason (the text before its first ': ')."""
    kinds = Counter(reason.split(": ")[0] for _, reason in skipped)
    example = {reason.split(": ")[0]: key for key, reason in reversed(skipped)}
    return f"{len(skipped)} skipped: " + "; ".join(
        f"{count} {kind} (e.g. {example[kind]})" for kind, count in kinds.most_common()
    )


def label_matrix(rows: Sequence[Sequence[str]], label_names: Sequence[str]) -> np.ndarray:
    """Multi-hot float32 matrix [N, L] from per-row label names; unknown names raise `InvalidInputError`."""
    index = {name: j for j, name in enumerate(label_names)}
    out = np.zeros((len(rows), len(label_names)), dtype=np.float32)
    for i, names in enumerate(rows):
        for name in names:
            if name not in index:
                raise InvalidInputError(f"label {name!r} is not one of {list(label_names)}")
            out[i, index[name]] = 1.0
    return out


def multiclass_targets(labels: np.ndarray) -> np.ndarray:
    """Class indices [N] from a one-hot matrix; raises `InvalidInputError` if a row has not exactly one label."""
    counts = labels.sum(axis=1)
    if labels.shape[0] and not np.all(counts == 1):
        bad = int(np.flatnonzero(counts != 1)[0])
        raise InvalidInputError(f"multiclass row {bad} has {int(counts[bad])} labels, expected exactly one")
    return labels.argmax(axis=1).astype(np.int64)
