"""What a build did."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from openmedclip.index.records import Failure


@dataclass
class BuildReport:
    """Counts of one build, and the files that could not be indexed.

    ``added``: files indexed for the first time (files that failed before and now work among them); ``changed``:
    indexed files whose content changed, encoded again; ``removed``: indexed files no longer in the archive;
    ``unchanged``: indexed files left as they are; ``failed``: files that cannot be indexed, those found this time
    and those that failed before and did not change (not retried), all listed in ``errors``. ``encoded``: how many
    files went to the encoder; ``count``: files in the index afterwards.
    """

    archive: str
    index: str
    model: str
    kind: str
    added: int = 0
    changed: int = 0
    removed: int = 0
    unchanged: int = 0
    failed: int = 0
    encoded: int = 0
    count: int = 0
    seconds: float = 0.0
    errors: list[Failure] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "archive": self.archive,
            "index": self.index,
            "model": self.model,
            "kind": self.kind,
            "added": self.added,
            "changed": self.changed,
            "removed": self.removed,
            "unchanged": self.unchanged,
            "failed": self.failed,
            "encoded": self.encoded,
            "count": self.count,
            "seconds": round(self.seconds, 3),
            "errors": [error.to_dict() for error in self.errors],
        }
