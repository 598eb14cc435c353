"""A de-duplicated view of a data source: the rows that have no copy in some other (training) sources."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from openmedclip.data.base import DataSource
from openmedclip.io.image import MedicalImage


class DeduplicatedSource(DataSource):
    """``source`` without the rows whose keys are in ``drop``; ``dropped`` lists the keys left out."""

    def __init__(self, source: DataSource, drop: Iterable[str], *, reason: str = "copy in the training data"):
        unwanted = set(drop)
        self.base = source
        self.rows = [row for row, key in enumerate(source.keys) if key not in unwanted]
        self.dropped = [key for key in source.keys if key in unwanted]
        self.reason = reason
        self.name = source.name
        self.task = source.task
        self.label_names = list(source.label_names)
        self.labels = source.labels[self.rows]
        self.targets = source.targets[self.rows] if source.targets is not None else None
        self.metadata = [source.metadata[row] for row in self.rows]
        self.keys = [source.keys[row] for row in self.rows]
        self.skipped = list(source.skipped)
        self.groups = ({unit: [ids[row] for row in self.rows] for unit, ids in source.groups.items()}
                       if source.groups else None)

    def image(self, i: int) -> MedicalImage:
        return self.base.image(self.rows[i])

    def captions(self, i: int) -> list[str]:
        return self.base.captions(self.rows[i])


def deduplicate(
    source: DataSource,
    against: Sequence[DataSource],
    *,
    kinds: tuple[str, ...] = ("exact", "near"),
    near_distance: int | None = None,
) -> DeduplicatedSource:
    """``source`` without its rows that have a copy (of ``kinds``: 'exact', 'near') in any of ``against``."""
    from openmedclip.audit.parts import Part
    from openmedclip.audit.run import NEAR_DISTANCE, audit_parts

    parts = [Part("evaluated", source), *(Part(f"against-{i}", other) for i, other in enumerate(against))]
    report = audit_parts(parts, near_distance=NEAR_DISTANCE if near_distance is None else near_distance)
    drop = report.items_with_copy("evaluated", [part.name for part in parts[1:]], kinds)
    return DeduplicatedSource(source, drop, reason=f"{' or '.join(kinds)} copy in {len(against)} other source(s)")
