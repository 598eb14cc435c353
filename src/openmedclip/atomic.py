"""Atomic, durable file writes: write beside the target, fsync, rename, fsync the folder.

Readers never see a half-written file, and after a crash (or a SIGKILL) the target is either the old file or
the complete new one. Every file openmedclip writes atomically goes through :func:`write_atomic`.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO


def fsync_dir(folder: Path) -> None:
    """Make a rename or a new entry in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(folder: Path) -> None:
    """fsync every file directly in ``folder``, then the folder itself."""
    for path in folder.iterdir():
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    fsync_dir(folder)


def write_atomic(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Call ``write`` on a temporary file in ``path``'s folder, fsync it and rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_text(path: Path, text: str) -> None:
    """Write UTF-8 text, atomically."""
    data = text.encode("utf-8")
    write_atomic(path, lambda handle: handle.write(data))


def write_json(path: Path, payload: Any) -> None:
    """Write ``payload`` as indented UTF-8 JSON, atomically."""
    write_text(path, json.dumps(payload, indent=2, ensure_ascii=False) + "\n")


def write_npy(path: Path, array: Any) -> None:
    """Write a NumPy ``array`` as a ``.npy`` file, atomically."""
    import numpy as np

    write_atomic(path, lambda handle: np.save(handle, array, allow_pickle=False))
