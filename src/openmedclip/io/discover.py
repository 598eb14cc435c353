"""Expanding files and folders into image paths: ``expand_paths`` keeps each unusable path as a problem,
``find_images`` raises on the first one."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from openmedclip.errors import ImageReadError
from openmedclip.io.formats import IMAGE_SUFFIXES, image_suffix, sniff_format


@dataclass(frozen=True)
class UnusablePath:
    """A path given as input that yields no image (missing, unsupported, an empty folder), and why."""

    path: Path
    problem: str

    def error(self) -> ImageReadError:
        return ImageReadError(self.path, self.problem)


def expand_paths(paths: Iterable[str | Path], recursive: bool = True) -> list[Path | UnusablePath]:
    """Expand ``paths`` into image files, in argument order, each folder's images sorted by path.

    A folder contributes its files with an ``IMAGE_SUFFIXES`` suffix (case-insensitive, ``.nii.gz``
    included) and files with other or no suffix that start with the DICOM 'DICM' preamble; hidden files
    and folders (names starting with '.') are skipped; ``recursive`` descends into sub-folders (each real
    folder once, so symlink loops end). A file named directly must be a supported image (by suffix or
    first bytes). Duplicates are kept once, at first sight. A missing path, a named file of unsupported
    format or a folder without images becomes an :class:`UnusablePath` in its place.
    """
    found: dict[Path | UnusablePath, None] = {}
    for raw in paths:
        path = Path(raw)
        images: list[Path | UnusablePath]
        if path.is_dir():
            images = list(_folder_images(path, recursive))
            if not images:
                images = [UnusablePath(
                    path, f"folder holds no images (looked for {', '.join(IMAGE_SUFFIXES)} and DICOM files)"
                )]
        elif path.is_file():
            if image_suffix(path) is None and sniff_format(path) is None:
                images = [UnusablePath(
                    path, f"unsupported image format (supported: {', '.join(IMAGE_SUFFIXES)}, DICOM)"
                )]
            else:
                images = [path]
        else:
            images = [UnusablePath(path, "no such file or folder")]
        found.update(dict.fromkeys(images))
    return list(found)


def find_images(paths: Iterable[str | Path], recursive: bool = True) -> list[Path]:
    """:func:`expand_paths` for callers that need every path usable: raises ``ImageReadError`` for the first
    missing path, named file of unsupported format, or folder without images."""
    images = []
    for item in expand_paths(paths, recursive):
        if isinstance(item, UnusablePath):
            raise item.error()
        images.append(item)
    return images


def _folder_images(folder: Path, recursive: bool) -> list[Path]:
    images = []
    seen: set[tuple[int, int]] = set()
    for root, folders, files in os.walk(folder, followlinks=True):
        status = os.stat(root)
        if (status.st_dev, status.st_ino) in seen:
            folders[:] = []
            continue
        seen.add((status.st_dev, status.st_ino))
        folders[:] = [name for name in folders if recursive and not name.startswith(".")]
        for name in files:
            path = Path(root, name)
            if not name.startswith(".") and (image_suffix(path) is not None or sniff_format(path) == "dicom"):
                images.append(path)
    return sorted(images)
