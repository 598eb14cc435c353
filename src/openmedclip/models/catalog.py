"""What ``openmedclip models`` shows: every registry name with its family, architecture, whether its files are on
this machine (and where), its licence and where to get it. Nothing heavy is imported and nothing is loaded."""

from __future__ import annotations

from dataclasses import dataclass

from openmedclip.errors import ModelLoadError
from openmedclip.models.family import get_family
from openmedclip.models.registry import registry


@dataclass(frozen=True)
class ModelRow:
    """One registry name as the models table shows it."""

    name: str
    family: str
    architecture: str
    location: str | None
    """The folder its files are in here, or None when they are not on this machine."""
    licence: str
    source: str
    """Where to download it ('ships with openmedclip' for bundled models)."""


def model_rows() -> list[ModelRow]:
    """Every registry entry, sorted by name."""
    from openmedclip.models.locate import registry_folder

    rows = []
    for name, entry in sorted(registry().items()):
        try:
            location: str | None = str(registry_folder(entry))
        except ModelLoadError:
            location = None
        rows.append(
            ModelRow(
                name=name,
                family=entry.family,
                architecture=get_family(entry.family).describe_entry(entry),
                location=location,
                licence=entry.licence or "see its source",
                source="ships with openmedclip" if entry.bundled else entry.url,
            )
        )
    return rows


def architecture_names() -> dict[str, list[str]]:
    """Family -> the plain architecture names it builds (random weights, or with a checkpoint)."""
    from openmedclip.models.family import FAMILIES

    registry()
    return {name: family.architectures() for name, family in FAMILIES.items() if family.architectures()}
