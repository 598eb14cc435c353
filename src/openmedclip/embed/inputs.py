"""What the engine accepts as images, turned into the ``MedicalImage`` a family's preprocess takes.

Items are file paths (any format :mod:`openmedclip.io` reads; a folder stands for the images in it, as
:func:`~openmedclip.io.discover.expand_paths` finds them), ``MedicalImage`` objects, ``PIL`` images (taken as the 8-bit
picture they show), or the rows of a data source. Problems with an item's *content* raise our error
types (``ImageReadError``), which the engine records per item; anything else is a bug and propagates.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np
from PIL import Image

from openmedclip.errors import ImageReadError
from openmedclip.io import MedicalImage, read_image
from openmedclip.io.content import check_content
from openmedclip.io.discover import UnusablePath, expand_paths

if TYPE_CHECKING:
    from openmedclip.data.base import DataSource

ImageItem = Union[str, Path, MedicalImage, Image.Image, UnusablePath]
"""A file path (or folder), an ``openmedclip.io.MedicalImage``, a ``PIL.Image``, or an
:class:`~openmedclip.io.discover.UnusablePath` (reported as a bad item)."""


def expand_folders(items: Sequence[ImageItem]) -> list[ImageItem]:
    """``items`` with each folder path replaced by its images (sorted; recursively), or by an
    :class:`~openmedclip.io.discover.UnusablePath` when it holds none. Other items stay as they are."""
    expanded: list[ImageItem] = []
    for item in items:
        if isinstance(item, (str, Path)) and Path(item).is_dir():
            expanded.extend(expand_paths([item]))
        else:
            expanded.append(item)
    return expanded


def describe_item(item: Any) -> str:
    """A short name for an input item, used in results and error messages."""
    if isinstance(item, (str, Path)):
        return str(item)
    if isinstance(item, UnusablePath):
        return str(item.path)
    path = getattr(item, "path", None) or getattr(item, "filename", None)
    return str(path) if path else f"<{type(item).__name__}>"


def from_pil(image: Image.Image, name: str = "<PIL.Image>") -> MedicalImage:
    """An 8-bit (uint8) ``MedicalImage`` of what a PIL image shows (grey stays grey, anything else becomes RGB)."""
    grey = image.mode in ("L", "1", "LA", "La")
    converted = image.convert("L" if grey else "RGB")
    meta = {"format": "pil", "bit_depth": 8, "mode": image.mode, "frame": 0, "n_frames": 1, "inverted": False,
            "spacing": None}
    return MedicalImage(converted, name, photometric="MONOCHROME2" if grey else "RGB", meta=meta)


def check_pixels(image: MedicalImage, *, finite: bool = True) -> MedicalImage:
    """Raise ``ImageReadError`` naming the image unless its pixels are a 2-D grey or 3-channel numeric array and,
    with ``finite``, hold no NaN or infinity (readers check that already; images built by hand are checked)."""
    pixels = image.pixels
    if not isinstance(pixels, np.ndarray) or not np.issubdtype(pixels.dtype, np.number):
        raise ImageReadError(image.path, f"pixels must be a numeric array, got {type(pixels).__name__}")
    if not (pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] == 3)) or 0 in pixels.shape:
        raise ImageReadError(image.path, f"pixels must have shape (H, W) or (H, W, 3), got {pixels.shape}")
    if finite and pixels.dtype.kind in "fc" and not np.isfinite(pixels).all():
        raise ImageReadError(image.path, "pixels contain NaN or infinite values")
    return image


class ItemReader:
    """Reads item ``i`` of a list of items, or row ``rows[i]`` of a data source, as a ``MedicalImage`` fit for a
    model (:func:`~openmedclip.io.content.check_content`: not tiny, not constant).

    ``read_options`` go to ``read_image`` for paths; ``{"target_size": loaded.preprocess.target_size}`` there
    decodes large JPEGs at reduced scale (pixels differ slightly from a full decode).
    """

    def __init__(
        self,
        items: Sequence[ImageItem] | DataSource,
        rows: Sequence[int] | None = None,
        read_options: dict[str, Any] | None = None,
    ):
        from openmedclip.data.base import DataSource

        self.source = items if isinstance(items, DataSource) else None
        self.items = items
        self.rows = list(rows) if rows is not None else None
        self.read_options = dict(read_options or {})

    def __len__(self) -> int:
        if self.rows is not None:
            return len(self.rows)
        return len(self.items)

    def name(self, index: int) -> str:
        """The name of item ``index`` in results and messages (a data source's key)."""
        if self.source is not None:
            return self.source.keys[self._row(index)]
        return describe_item(self.items[self._row(index)])

    def read(self, index: int) -> MedicalImage:
        """Item ``index`` as a checked ``MedicalImage``."""
        return check_content(self._image(index))

    def _image(self, index: int) -> MedicalImage:
        if self.source is not None:
            return check_pixels(self.source.image(self._row(index)), finite=False)
        item = self.items[self._row(index)]
        if isinstance(item, MedicalImage):
            return check_pixels(item)
        if isinstance(item, Image.Image):
            return from_pil(item, describe_item(item))
        if isinstance(item, (str, Path)):
            return read_image(item, **self.read_options)
        if isinstance(item, UnusablePath):
            raise item.error()
        raise ImageReadError(describe_item(item), f"not an image: expected a path, MedicalImage or PIL image, got "
                             f"{type(item).__name__}")

    def _row(self, index: int) -> int:
        return self.rows[index] if self.rows is not None else index
