"""One build at a time per index: an exclusive lock on ``build.lock`` (released by the system if the build dies)."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from openmedclip.errors import InvalidInputError

LOCK_NAME = "build.lock"


@contextmanager
def build_lock(folder: Path) -> Iterator[None]:
    """Hold the build lock of the index in ``folder``; raise ``InvalidInputError`` if another build holds it."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InvalidInputError(f"{folder}: another build of this index is running") from None
        yield
    finally:
        os.close(fd)
