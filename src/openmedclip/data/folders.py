"""`ClassFolders`: images sorted into one folder per class (root/<class>/**/*.png|dcm|nii|...)."""

from __future__ import annotations

from pathlib import Path

from openmedclip.data.files import FileSource, Row
from openmedclip.errors import InvalidInputError


class ClassFolders(FileSource):
    """A multiclass source: label names are the sorted sub-folder names of `root`.

    Images are found with `openmedclip.io.find_images` (recursively; hidden files and folders are ignored); keys
    are paths relative to `root`. Images lying directly in `root` belong to no class and are reported in `skipped`;
    a class folder without images keeps its label name (with no rows).
    """

    def __init__(
        self,
        root: str | Path,
        *,
        name: str | None = None,
        validate: bool = False,
        read_options: dict | None = None,
    ):
        from openmedclip.io import find_images

        root = Path(root)
        if not root.is_dir():
            raise InvalidInputError(f"{root}: class-folder root is not a folder")
        classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not classes:
            raise InvalidInputError(f"{root}: no class sub-folders found")
        rows, loose = [], []
        for path in find_images([root], recursive=True):
            relative = path.relative_to(root)
            if len(relative.parts) == 1:
                loose.append((relative.as_posix(), "not inside a class folder"))
            else:
                label = relative.parts[0]
                rows.append(Row(relative.as_posix(), path, labels=[label], meta={"class": label}))
        super().__init__(
            name or root.name,
            rows,
            task="multiclass",
            label_names=classes,
            validate=validate,
            read_options=read_options,
            bad=loose,
        )
