"""``find_images``: expand files and folders into a deterministic list of readable image paths."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from openmedclip.errors import ImageReadError
from openmedclip.io.formats import IMAGE_SUFFIXES, image_suffix, sniff_format


def find_images(paths: Iterable[str | Path], recursive: bool = True) -> list[Path]:
    """Expand ``paths`` into image files, in argument order, each folder's images sorted by path.

    A folder contributes its files with an ``IMAGE_SUFFIXES`` suffix (case-insensitive, ``.nii.gz``
    included) and files with other or no suffix that start with the DICOM 'DICM' preamble; hidden files
    and folders (names starting with '.') are skipped; ``recursive`` descends into sub-folders.
    A file named directly must be a supported image (by suffix or first bytes). Duplicates are kept
    once, at first sight.
    Raises ``ImageReadError`` for a missing path, a named file of unsupported format, or a folder
    without images.
    """
    found: dict[Path, None] = {}
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            images = _folder_images(path, recursive)
            if not images:
                raise ImageReadError(
                    path, f"folder holds no images (looked for {', '.join(IMAGE_SUFFIXES)} and DICOM files)"
                )
        elif path.is_file():
            if image_suffix(path) is None and sniff_format(path) is None:
                raise ImageReadError(path, f"unsupported image format (supported: {', '.join(IMAGE_SUFFIXES)}, DICOM)")
            images = [path]
        else:
            raise ImageReadError(path, "no such file or folder")
        found.update(dict.fromkeys(images))
    return list(found)


def _folder_images(folder: Path, recursive: bool) -> list[Path]:
    images = []
    for root, folders, files in os.walk(folder):
        folders[:] = [name for name in folders if recursive and not name.startswith(".")]
        for name in files:
            path = Path(root, name)
            if not name.startswith(".") and (image_suffix(path) is not None or sniff_format(path) == "dicom"):
                images.append(path)
    return sorted(images)
