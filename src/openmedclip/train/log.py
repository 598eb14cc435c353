"""The training log: one JSON object per line, appended and flushed as the run goes."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from openmedclip.atomic import write_text


class JsonlLog:
    """Appends records to a JSON-lines file; `None` path makes a log that writes nothing (other ranks)."""

    def __init__(self, path: Path | None):
        self.path = path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, record: dict[str, Any]) -> None:
        if self.path is None:
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(_finite(record)) + "\n")

    def truncate_after(self, step: int) -> None:
        """Drop records of steps after `step` (logged after the checkpoint a resumed run starts from)."""
        if self.path is None or not self.path.is_file():
            return
        kept = [line for line in self.path.read_text(encoding="utf-8").splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= step]
        write_text(self.path, "".join(line + "\n" for line in kept))


def read_log(path: Path) -> list[dict[str, Any]]:
    """All records of a log file."""
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def _finite(value: Any) -> Any:
    """NaN/inf become None so every line is valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value
