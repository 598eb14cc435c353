"""Built-in model families, one sub-package each. Importing one registers it and its registry entries."""

from __future__ import annotations

import functools
from importlib import import_module

BUILTIN_FAMILIES = tuple(
    f"openmedclip.models.families.{name}"
    for name in ("open_clip", "chexzero", "pmc_clip", "medclip", "biovil", "gloria")
)


@functools.cache
def load_builtin_families() -> None:
    """Import (and so register) every built-in family once; cheap: family modules import torch lazily."""
    for module in BUILTIN_FAMILIES:
        import_module(module)
