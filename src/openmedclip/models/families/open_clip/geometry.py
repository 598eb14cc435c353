"""Where open_clip's inference transform puts the model's input window on a source image (no torch needed)."""

from __future__ import annotations

from typing import Any

from openmedclip.models.family import Geometry


def size_pair(size: Any) -> tuple[int, int]:
    """``(rows, columns)`` of an open_clip ``size`` (an int or a sequence)."""
    if isinstance(size, (list, tuple)):
        return int(size[-2]), int(size[-1])
    return int(size), int(size)


class TransformGeometry:
    """Resize and crop arithmetic of open_clip's transform for the preprocess config ``cfg``."""

    cfg: dict[str, Any]

    @property
    def target_size(self) -> int:
        """The side images are resized towards (the larger side of the model input)."""
        return max(size_pair(self.cfg.get("size", 224)))

    def geometry(self, source_size: tuple[int, int]) -> Geometry:
        """Where the model's input window lies on a source of ``source_size`` (rows, columns)."""
        rows, columns = source_size
        target = size_pair(self.cfg.get("size", 224))
        resized = resized_size(source_size, target, self.cfg.get("resize_mode") or "shortest")
        offset = tuple(crop_offset(size, want) for size, want in zip(resized, target))
        return Geometry((rows, columns), resized, offset, target)  # type: ignore[arg-type]


def resized_size(source_size: tuple[int, int], target: tuple[int, int], mode: str) -> tuple[int, int]:
    """``(rows, columns)`` after the transform's resize step (torchvision's rounding)."""
    rows, columns = source_size
    if mode == "squash":
        return target
    if mode == "shortest" and target[0] == target[1]:
        short, long = sorted((rows, columns))
        scaled_long = int(target[0] * long / short)
        return (target[0], scaled_long) if rows <= columns else (scaled_long, target[0])
    ratios = (rows / target[0], columns / target[1])
    ratio = max(ratios) if mode == "longest" else min(ratios)
    return round(rows / ratio), round(columns / ratio)


def crop_offset(size: int, want: int) -> int:
    """Top/left of a centred crop (torchvision's rounding), or minus the leading padding when too small."""
    if size >= want:
        return round((size - want) / 2.0)
    return -((want - size) // 2)
