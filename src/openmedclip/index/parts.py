"""Build parts: under torchrun each process writes the files it encodes to its own store, a *part*, and the
first process folds the parts into the index (also any left by an interrupted run, before a build starts)."""

from __future__ import annotations

from pathlib import Path

from openmedclip.index.store import Store

PARTS_FOLDER = "parts"
PART_FORMAT = "openmedclip-index-part"


def part_path(folder: Path, rank: int) -> Path:
    """The part file process ``rank`` writes in the index ``folder``."""
    return Path(folder) / PARTS_FOLDER / f"rank-{rank:05d}.sqlite"


def open_part(folder: Path, rank: int) -> Store:
    """Process ``rank``'s part store, created empty when new."""
    return Store.create(part_path(folder, rank), PART_FORMAT)


def merge_parts(store: Store, folder: Path) -> int:
    """Fold every part in ``folder`` into ``store`` (one transaction each), deleting each once merged; returns
    how many there were. A part holds only committed chunks, so one from a killed process merges whole."""
    parts = sorted((Path(folder) / PARTS_FOLDER).glob("rank-*.sqlite"))
    for path in parts:
        Store.create(path, PART_FORMAT).close()  # a part killed while being created comes out empty
        store.merge(path)
        for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            leftover.unlink(missing_ok=True)
    return len(parts)
